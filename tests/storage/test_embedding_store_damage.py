"""An embedding store changed after its step wrote it is an error naming the file and how to
recover, never an internal error, an unpickled object, a huge allocation or silently wrong rows."""

from __future__ import annotations

import json
import pickle

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
