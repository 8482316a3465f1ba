"""decontaminate's eval set from someone else: a pipe or device for the set or one of its images, a
Parquet column of another type, a decompression bomb, a path out of the working directory of an
--untrusted spec. Each is an error naming the file and the fix, at plan time where the files
tell it: never a wait, a traceback or gigabytes decoded."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from curate_dedup.testing import planted

from curate.embeddings import EmbeddingStore
from curate.errors import CurateError, SpecError
from curate.plan import make_plan
from curate.spec import load_spec_text
from tests.core.test_run_dir_safety import no_endless_wait

pytest.importorskip("faiss")


def plan_error(tmp_path: Path, pm, untrusted: bool = False, **params) -> str:
    """The SpecError of planning decontaminate with ``params``, from ``tmp_path``."""
    pl.DataFrame({"url": ["https://example.com/0.jpg"], "alt_text": ["a red circle"]}).write_parquet(tmp_path / "in.parquet")
    spec = {"name": "evals", "source": {"format": "parquet", "path": "in.parquet"},
            "steps": [{"step": "decontaminate", "params": params}], "run": {"dir": "run"}}
    loaded = load_spec_text(yaml.safe_dump(spec), tmp_path / "spec.yaml")
    loaded.spec.run.untrusted = untrusted
    with no_endless_wait(20), pytest.raises(SpecError) as error:
        make_plan(loaded, pm, tmp_path / "run")
    return str(error.value)


def png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width`` × ``height`` pixels, in a few bytes: what a
    decompression bomb shows before it is decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(min(height * (width + 1), 1 << 16))))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("make, says", [
    (os.mkfifo, "is a pipe (FIFO), not a file"),
    (lambda p: p.symlink_to("/dev/zero"), "is a character device (a link to /dev/zero), not a file"),
])
def test_an_eval_set_that_is_not_a_file_or_folder_is_named_at_plan_time(dedup_pm, tmp_path, monkeypatch, make, says):
    """It was 'holds no images', and only once the run reached the step."""
    monkeypatch.chdir(tmp_path)
    make(tmp_path / "evals")
    assert f"steps[0].params: eval set evals {says}" in plan_error(tmp_path, dedup_pm, eval="evals")


@pytest.mark.parametrize("make, says", [
    (os.mkfifo, "is a pipe (FIFO), not a file"),
    (lambda p: p.symlink_to("/dev/zero"), "is a character device (a link to /dev/zero), not a file"),
])
def test_an_image_of_the_set_that_is_not_a_file_is_named_at_plan_time(dedup_pm, tmp_path, monkeypatch, make, says):
    """A pipe listed in a Parquet eval set made the step wait forever for a writer; one in an
    image folder was skipped without a word."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    make(tmp_path / "images" / "a.png")
    pl.DataFrame({"image_path": ["images/a.png"]}).write_parquet(tmp_path / "evals.parquet")
    message = plan_error(tmp_path, dedup_pm, eval="evals.parquet")
    assert f"eval image images/a.png (item '0' of evals.parquet) {says}" in message
    assert f"eval image images/a.png (item 'a.png' of images) {says}" in plan_error(tmp_path, dedup_pm, eval="images")


@pytest.mark.parametrize("paths, says", [
    (pl.Series("image_path", [1, 2]), "column 'image_path' holds Int64, not image paths"),
    (pl.Series("image_path", [["a.png"]]), "column 'image_path' holds List(String), not image paths"),
    (pl.Series("image_path", ["a.png", None]), "row 2 has no image path"),
])
def test_a_path_column_of_another_type_is_named_not_a_type_error(dedup_pm, tmp_path, monkeypatch, paths, says):
    monkeypatch.chdir(tmp_path)
    png(tmp_path / "a.png", 8, 8)
    pl.DataFrame([paths]).write_parquet(tmp_path / "evals.parquet")
    assert says.replace("(", "(") in plan_error(tmp_path, dedup_pm, eval="evals.parquet")


@pytest.mark.parametrize("width, height, says", [
    (20_000, 20_000, "declares more pixels than the 50,000,000"),
    (12_000, 12_000, "is 12,000 × 12,000 pixels, more than the 50,000,000"),
])
def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, width, height, says):
    """400 M pixels failed the step with Pillow's DecompressionBombError; 144 M decoded (2 GB)."""
    from curate_dedup.evalfiles import read_image

    bomb = png(tmp_path / "bomb.png", width, height)
    with pytest.raises(CurateError, match=says) as error:
        read_image(bomb, lambda image: image)
    assert error.value.hint.startswith("downscale it")
    assert read_image(png(tmp_path / "small.png", 8, 8), lambda image: image.size) == (8, 8)


def test_an_image_swapped_for_a_pipe_after_the_plan_is_not_waited_on(tmp_path):
    from curate_dedup.evalfiles import read_image

    os.mkfifo(tmp_path / "a.png")
    with no_endless_wait(10), pytest.raises(CurateError, match=r"is a pipe \(FIFO\), not a file"):
        read_image(tmp_path / "a.png", lambda image: image)


@pytest.mark.parametrize("evals, says", [
    ("/etc", "params.eval: '/etc' is outside the working directory"),
    ("../evals", "params.eval: '../evals' is written with '..' (an untrusted spec may not use"),
    ("abs.parquet", "eval image /etc/passwd (item '0' of abs.parquet) lies at /etc/passwd, outside the working"),
    ("up.parquet", "lies at /etc/passwd, outside the working directory"),
    ("linked", "eval image linked/a.png (item 'a.png' of linked) lies at"),
])
def test_an_untrusted_spec_reads_no_eval_file_outside_the_working_directory(dedup_pm, tmp_path, monkeypatch,
                                                                            evals, says):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    pl.DataFrame({"image_path": ["/etc/passwd"]}).write_parquet(tmp_path / "work" / "abs.parquet")
    pl.DataFrame({"image_path": ["../" * 12 + "etc/passwd"]}).write_parquet(tmp_path / "work" / "up.parquet")
    (tmp_path / "work" / "linked").mkdir()
    (tmp_path / "work" / "linked" / "a.png").symlink_to(png(tmp_path / "outside.png", 8, 8))
    message = plan_error(tmp_path / "work", dedup_pm, untrusted=True, eval=evals)
    assert says in message and "--untrusted" in message
    with pytest.raises(CurateError, match="outside the working directory"):
        from curate_dedup.evalfiles import read_image

        read_image(Path("linked/a.png"), lambda image: image, within=(Path.cwd(),))


def test_an_untrusted_spec_reads_an_eval_set_inside_the_working_directory(run_on, tmp_path, monkeypatch):
    from curate_dedup.decontaminate import Decontaminate

    monkeypatch.chdir(tmp_path)
    data = planted([1] * 10, dim=32, seed=0)
    store = EmbeddingStore(tmp_path, "eval")
    store.write_meta(32, "synthetic")
    store.write_shard(0, ["e0"], data.vectors[[3]])
    step = Decontaminate(Decontaminate.Params(eval="embeddings/eval"))
    step.untrusted = True
    assert step.plan_check({}) == []
    result = run_on("decontaminate", data, {"eval": "embeddings/eval"})
    assert result.dropped["eval_item"].to_list() == ["e0"]


def test_a_damaged_eval_store_says_to_write_it_again_not_to_remove_its_folder(run_on, tmp_path):
    """The hint was 'remove <the folder holding the eval set> so that step runs again'."""
    data = planted([1] * 10, dim=32, seed=0)
    store = EmbeddingStore(tmp_path / "mine", "eval")
    store.write_meta(32, "synthetic")
    store.write_shard(0, ["e0"], data.vectors[[3]])
    np.save(store.dir / "shard-00000.npy", np.zeros((1, 32), np.float64))
    with pytest.raises(CurateError, match="is damaged") as error:
        run_on("decontaminate", data, {"eval": str(store.dir)})
    assert "write it again" in error.value.hint and "remove" not in error.value.hint


def test_an_image_a_parquet_eval_set_lists_is_in_the_steps_fingerprint(tmp_path, monkeypatch):
    """Edited in place, in a folder of its own, it reruns the step (the Parquet file's digest
    alone stayed the same, and the embeddings of the old image were reused)."""
    from curate_dedup.decontaminate import Decontaminate
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "images" / "a.png")
    pl.DataFrame({"image_path": ["images/a.png"]}).write_parquet(tmp_path / "evals.parquet")
    step = Decontaminate(Decontaminate.Params(eval="evals.parquet"))
    before = step.fingerprint_extra()
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "images" / "a.png")
    os.utime(tmp_path / "images" / "a.png", ns=(1, 1))  # whatever the clock did
    assert step.fingerprint_extra()["eval"] == before["eval"]  # the Parquet file did not change
    assert step.fingerprint_extra() != before


def test_an_eval_set_whose_dictionary_unpacks_past_its_budget_is_refused(dedup_pm, tmp_path, monkeypatch):
    """207 kB of Parquet, one 1,000-byte path in 2M rows, took 2.75 GB and 37 s at validate (security re-probe)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import curate.unpacked

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(curate.unpacked, "WHOLE_FILE_TEXT", 1_000_000)
    paths = pa.DictionaryArray.from_arrays(pa.array([0] * 5000, pa.int32()), pa.array(["a" * 1000 + ".png"]))
    pq.write_table(pa.table({"image_path": paths}), tmp_path / "evals.parquet", store_schema=False)
    said = plan_error(tmp_path, dedup_pm, eval="evals.parquet")
    assert "eval set evals.parquet holds 5.0 MB of text unpacked, more than the 1.0 MB" in said
