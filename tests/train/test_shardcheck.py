"""Shards open_clip_train would read forever (curate_train/shardcheck.py): it skips what it cannot
read and repeats its pass until it has an epoch's batches, so a tar with no readable sample, or an
export smaller than one batch, never ended. They are refused before training, naming the tar."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from curate.sink import SinkContext
from curate.step import TableInput
from tests.export.conftest import make_store

# make_store's table has a row without an image, which the export warns of (tests/export/test_sinks.py).
pytestmark = pytest.mark.filterwarnings("ignore::curate_export.sinks.ExportWarning")


def export(root: Path, rows: int = 16) -> Path:
    """A real webdataset export (the sink's tars and sizes.json) of ``rows`` solid-colour images."""
    from curate_export.sinks import WebDatasetSink

    table = make_store(root / "store", rows, png_every=0)
    source = root / "input.parquet"
    table.write_parquet(source)
    ctx = SinkContext(run_dir=root, spec_dir=root, seed=0, label="export", path="shards")
    params = WebDatasetSink.Params(store_dir=str((root / "store").resolve()), samples_per_shard=8)
    WebDatasetSink(params, ctx).write(TableInput([source], dict(table.schema)))
    return root / "shards"


def tar_of(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, "JPEG")
    return buffer.getvalue()


def shards_of(tmp_path: Path, make) -> Path:
    """A folder with sizes.json naming one tar, ``make(path)`` writing what stands at its place."""
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "sizes.json").write_text(json.dumps({"00000.tar": 100}))
    make(shards / "00000.tar")
    return shards


HOSTILE = {
    "random_bytes": (lambda p: p.write_bytes(os.urandom(20_000)), "is not a tar file open_clip_train can read"),
    "fifo": (os.mkfifo, "is a pipe (FIFO), not a tar file"),
    "images_that_do_not_decode": (lambda p: tar_of(p, {f"{i:03d}.{ext}": data for i in range(3)
                                                        for ext, data in (("jpg", b"not a jpeg"), ("txt", b"a cat"))}),
                                  "sample '002' does not decode"),
    "no_captions": (lambda p: tar_of(p, {"000.jpg": jpeg(), "001.jpg": jpeg()}), "has no caption (.txt)"),
    "no_images": (lambda p: tar_of(p, {"000.txt": b"a cat", "000.json": b"{}"}), "has no image"),
    "empty": (lambda p: tar_of(p, {}), "it holds no files"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_tar_that_gives_no_sample_is_named_with_why(tmp_path, case):
    from curate_train.shardcheck import shards_problems

    make, expected = HOSTILE[case]
    shards = shards_of(tmp_path, make)
    problems = shards_problems(shards, ["00000.tar"])
    assert len(problems) == 1 and str(shards / "00000.tar") in problems[0] and expected in problems[0], problems


def test_a_tar_whose_first_samples_are_bad_but_a_later_one_reads_passes(tmp_path):
    from curate_train.shardcheck import tar_problem

    members = {"000.jpg": b"broken", "000.txt": b"a cat", "001.txt": b"no image", "002.jpg": jpeg(),
               "002.txt": b"a red square"}
    assert tar_problem(tar_of(tmp_path / "x.tar", members)) is None


def test_what_the_webdataset_sink_writes_passes(tmp_path):
    from curate_train.shardcheck import shards_problems

    shards = export(tmp_path)
    names = sorted(json.loads((shards / "sizes.json").read_text()))
    assert len(names) == 2 and shards_problems(shards, names) == []


def test_train_clip_on_a_damaged_tar_is_refused_before_training(tmp_path, curate_cli):
    shards = shards_of(tmp_path, HOSTILE["random_bytes"][0])
    result = curate_cli("train", "clip", str(shards), "--out", str(tmp_path / "out"), "--batch-size", "4", timeout=120)
    assert result.code == 2, result
    assert "00000.tar is not a tar file open_clip_train can read" in result.stderr
    assert not (tmp_path / "out").exists()


def test_train_clip_on_fewer_samples_than_a_batch_is_refused_before_training(tmp_path, curate_cli):
    shards = export(tmp_path)
    result = curate_cli("train", "clip", str(shards), "--out", str(tmp_path / "out"), "--batch-size", "32", timeout=120)
    assert result.code == 2, result
    assert "holds 16 samples to train on, fewer than one batch of 32" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_tar_cut_short_is_refused_naming_what_it_holds(tmp_path):
    """A tar cut to 100 kB (20 of its 300 samples left) trained with exit 0, open_clip_train
    filling the epoch from the other shards (blend probe): each tar must hold what sizes.json lists."""
    from curate_train.shardcheck import shards_problems

    shards = export(tmp_path)
    sizes = json.loads((shards / "sizes.json").read_text())
    assert shards_problems(shards, sorted(sizes), sizes) == []
    whole = (shards / "00000.tar").read_bytes()
    (shards / "00000.tar").write_bytes(whole[:len(whole) // 2])
    problems = shards_problems(shards, sorted(sizes), sizes)
    assert len(problems) == 1 and "00000.tar is cut short or damaged after" in problems[0]
    assert "of the 8 samples sizes.json lists" in problems[0]
    tar_of(shards / "00000.tar", {"000.jpg": jpeg(), "000.txt": b"a red square"})  # whole, but one sample of 8
    problems = shards_problems(shards, sorted(sizes), sizes)
    assert len(problems) == 1 and "holds 1 samples where sizes.json lists 8" in problems[0]


def test_train_clip_on_an_empty_export_is_refused_with_exit_2(tmp_path, curate_cli):
    """What an export of an empty table writes (sizes.json {}) was an internal ValueError (blend probe)."""
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "sizes.json").write_text("{}")
    result = curate_cli("train", "clip", str(shards), "--out", str(tmp_path / "out"), timeout=120)
    assert result.code == 2, result
    assert "holds no shards: the export it comes from had no rows to write" in result.stderr
    assert "internal error" not in result.stderr

