"""An embedding store changed after its step wrote it is an error naming the file and how to
recover, never an internal error, an unpickled object, a huge allocation or silently wrong rows."""

from __future__ import annotations

import json
import os
import pickle
import re

import numpy as np
import polars as pl
import pytest

from curate.embeddings import EmbeddingStore
from curate.errors import CurateError


@pytest.fixture
def store(tmp_path):
    store = EmbeddingStore.of_step(tmp_path / "step", "image")
    store.write_meta(8, "m")
    rng = np.random.default_rng(0)
    for shard in range(2):
        store.write_shard(shard, [f"{shard}-{i}" for i in range(5)], rng.normal(size=(5, 8)))
    return store


def _read_all(store):
    store.load_all()
    store.lookup(["0-1", "1-4"])


def test_an_intact_store_reads_back(store):
    uids, vectors = store.load_all()
    assert uids.to_list() == [f"{s}-{i}" for s in range(2) for i in range(5)] and vectors.shape == (10, 8)
    assert np.allclose(np.linalg.norm(store.lookup(["1-4"]), axis=1), 1, atol=1e-3)


def _npy(store):
    return store.dir / "shard-00001.npy"


@pytest.mark.parametrize("damage, reason", [
    (lambda s: _npy(s).write_bytes(b"\x93NUMPY garbage"), "damaged"),
    (lambda s: _npy(s).write_bytes(pickle.dumps([1, 2, 3])), "damaged"),
    (lambda s: np.save(_npy(s), np.array([{"a": 1}], dtype=object)), "Python objects"),
    (lambda s: np.save(_npy(s), np.zeros((3, 8), np.float16)), "3 vectors for 5 uids"),
    (lambda s: np.save(_npy(s), np.zeros((5, 7), np.float16)), "not float16 rows of 8"),
    (lambda s: np.save(_npy(s), np.zeros((5, 8), np.float64)), "not float16 rows of 8"),
    (lambda s: np.save(_npy(s), np.full((5, 8), np.nan, np.float16)), "NaN"),
    (lambda s: _npy(s).write_bytes(_npy(s).read_bytes()[:-40]), "damaged"),
    (lambda s: (s.dir / "shard-00001.uids.parquet").write_text("not parquet"), "uids.parquet"),
    (lambda s: (s.dir / "meta.json").write_text("{"), "meta.json"),
    (lambda s: (s.dir / "meta.json").write_text(json.dumps({"dim": 10**11})), "not a whole number"),
    (lambda s: (s.dir / "meta.json").write_text(json.dumps([8])), "meta.json"),
])
def test_a_damaged_store_is_an_error_naming_the_file(store, damage, reason):
    damage(store)
    with pytest.raises(CurateError, match=reason) as error:
        _read_all(store)
    assert "is damaged" in str(error.value) and str(store.root.parent) in error.value.hint


def test_a_pickle_in_the_store_is_never_unpickled(store, tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (marker.write_text, ("pwned",))

    np.save(_npy(store), np.array([Evil()], dtype=object), allow_pickle=True)
    with pytest.raises(CurateError, match="Python objects"):
        _read_all(store)
    assert not marker.exists()
    assert pl.read_parquet(store.dir / "shard-00000.uids.parquet").height == 5


def _replace_with(path, make):
    path.unlink()
    make(path)


@pytest.mark.parametrize("name, make, says", [
    ("shard-00001.npy", os.mkfifo, "a pipe (FIFO)"),
    ("shard-00001.uids.parquet", os.mkfifo, "a pipe (FIFO)"),
    ("shard-00001.npy", lambda p: p.symlink_to("/dev/zero"), "a character device"),
    ("shard-00001.uids.parquet", lambda p: p.symlink_to("/dev/zero"), "a character device"),
])
def test_a_pipe_or_device_in_the_store_is_an_error_not_a_wait(store, name, make, says):
    """A store from elsewhere (a cache, a copied run) with a pipe for a shard: np.load and
    read_parquet opened it and waited for a writer forever."""
    from tests.core.test_run_dir_safety import no_endless_wait

    _replace_with(store.dir / name, make)
    with no_endless_wait(10), pytest.raises(CurateError, match=f"is damaged: it is {re.escape(says)}, not a file"):
        _read_all(store)
    with no_endless_wait(10), pytest.raises(CurateError, match=re.escape(says)):
        store.uids() if name.endswith(".parquet") else store.load_all()


def test_a_shard_whose_header_claims_more_rows_than_it_holds_maps_nothing(store):
    header = "{'descr': '<f2', 'fortran_order': False, 'shape': (10000000000, 8), }"
    header += " " * (117 - len(header)) + "\n"
    _npy(store).write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(64))
    with pytest.raises(CurateError, match="is damaged"):
        _read_all(store)


def test_a_store_that_is_no_steps_says_its_own_repair(store):
    store.repair = "write the eval set's store again"
    np.save(_npy(store), np.zeros((5, 7), np.float16))
    with pytest.raises(CurateError) as error:
        _read_all(store)
    assert error.value.hint == "write the eval set's store again"
