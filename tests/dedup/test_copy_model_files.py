"""copy_embed's model from someone else: a pipe or device for the model, its config.json or its
weights; a config that asks for terabytes; weights that do not fit the config; a path out of the
working directory of an --untrusted spec. Each is refused at plan time, from the two files alone
(nothing built, nothing imported): it passed `curate validate`, then the run waited forever,
read /dev/zero into 14 GB, or failed after the download."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import pytest
from curate_dedup.copydetect import loader

from tests.core.test_run_dir_safety import no_endless_wait

WORLD_COPY = loader.WEIGHTS_DIR / loader.WORLD_COPY


def model_dir(tmp_path: Path, **config) -> Path:
    """A copy of the shipped model directory, its config changed by ``config``."""
    target = tmp_path / "model"
    shutil.copytree(WORLD_COPY, target)
    if config:
        merged = {**json.loads((WORLD_COPY / "config.json").read_text()), **config}
        (target / "config.json").write_text(json.dumps(merged))
    return target


def check(path: Path | str, untrusted: bool = False) -> str:
    with no_endless_wait(20):
        problems = loader.check(str(path), untrusted) if untrusted else loader.check(str(path))
    assert problems, f"{path} passed the plan check"
    return "\n".join(problems)


def test_the_shipped_model_passes():
    assert loader.check(loader.WORLD_COPY) == [] and loader.check(str(WORLD_COPY)) == []


@pytest.mark.parametrize("name, make, says", [
    ("config.json", os.mkfifo, "config.json is a pipe (FIFO), not a file"),
    ("config.json", lambda p: p.symlink_to("/dev/zero"), "config.json is a character device (a link to /dev/zero)"),
    ("model.safetensors", os.mkfifo, "model.safetensors is a pipe (FIFO), not a file"),
    ("model.safetensors", os.mkdir, "model.safetensors is a folder, not a file"),
])
def test_a_model_file_that_is_not_a_file_is_refused(tmp_path, name, make, says):
    directory = model_dir(tmp_path)
    (directory / name).unlink()
    make(directory / name)
    assert f"copy model directory {directory}: {says}" in check(directory)


@pytest.mark.parametrize("make, says", [
    (os.mkfifo, "is a pipe (FIFO), not a file"),
    (lambda p: p.symlink_to("/dev/zero"), "is a character device (a link to /dev/zero), not a file"),
])
def test_a_model_file_that_is_a_pipe_or_device_is_not_said_to_be_missing(tmp_path, make, says):
    make(tmp_path / "sscd.torchscript.pt")
    assert f"copy model {tmp_path / 'sscd.torchscript.pt'} {says}" in check(tmp_path / "sscd.torchscript.pt")


@pytest.mark.parametrize("config, says", [
    ({"channels": [100_000] * 5}, "channels is [100000, 100000, 100000, 100000, 100000], not 5 whole numbers"),
    ({"image_size": 1 << 20}, "image_size is 1048576, not a multiple of 8 from 8 to 1,024"),
    ({"dim": 10**9}, "dim is 1000000000, not a whole number from 1 to 65,536"),
    ({"mean": "abc"}, "mean is 'abc', not 3 finite numbers"),
    ({"std": [0.25, 0, 0.25]}, "std is [0.25, 0, 0.25], not 3 finite positive numbers"),
    ({"architecture": "other"}, "architecture is 'other', not 'curate-copy-cnn'"),
    ({"channels": [4096] * 5, "image_size": 1024}, "more than the 1,000,000,000 a copy model may have"),
])
def test_a_config_is_checked_before_anything_is_built(tmp_path, config, says):
    """Channels of 100,000 asked torch for 360 GB; a string for mean failed a shard."""
    assert says in check(model_dir(tmp_path, **config))


@pytest.mark.parametrize("text, says", [
    ("[1, 2]", "is a JSON list, not an object"),
    ("{", "is not readable JSON"),
])
def test_a_config_that_is_not_a_json_object_is_refused(tmp_path, text, says):
    directory = model_dir(tmp_path)
    (directory / "config.json").write_text(text)
    assert says in check(directory)


def test_a_sparse_config_is_not_read(tmp_path):
    directory = model_dir(tmp_path)
    with open(directory / "config.json", "r+b") as handle:
        handle.truncate(2 << 30)
    assert "is larger than any file curate writes there (1,048,576 bytes at most)" in check(directory)


def test_weights_that_do_not_fit_the_config_are_refused_from_the_header(tmp_path):
    directory = model_dir(tmp_path, dim=64)
    assert "head.weight is [128, 4096], config.json makes [64, 4096]" in check(directory)
    header = json.dumps({"head.weight": {"dtype": "F32", "shape": [100_000, 100_000],
                                         "data_offsets": [0, 40_000_000_000]}}).encode()
    (directory / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    assert "model.safetensors is truncated or corrupt: tensor 'head.weight'" in check(directory)


@pytest.mark.parametrize("model, says", [
    (str(WORLD_COPY), "is outside the working directory;"),
    ("../model", "is written with '..' (an untrusted spec may not use '..'"),
    ("linked", "'linked/model.safetensors' is a link to"),
])
def test_an_untrusted_spec_loads_no_model_outside_the_working_directory(tmp_path, monkeypatch, model, says):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    linked = model_dir(tmp_path / "work")
    linked.rename(tmp_path / "work" / "linked")
    (tmp_path / "work" / "linked" / "model.safetensors").unlink()
    (tmp_path / "work" / "linked" / "model.safetensors").symlink_to(WORLD_COPY / "model.safetensors")
    assert says in check(model, untrusted=True)
    assert loader.check(model) == [] or model == "../model"  # trusted: the user's own choice
    assert loader.check(loader.WORLD_COPY, untrusted=True) == []


def test_plan_check_of_the_step_says_it_with_the_spec_location(dedup_pm, tmp_path):
    import polars as pl

    from curate.errors import SpecError
    from curate.testing import run_step

    directory = model_dir(tmp_path)
    (directory / "config.json").unlink()
    os.mkfifo(directory / "config.json")
    table = pl.DataFrame({"uid": ["a"], "image": [{"shard": "s", "key": "a"}]},
                         schema={"uid": pl.Utf8, "image": pl.Struct({"shard": pl.Utf8, "key": pl.Utf8})})
    with no_endless_wait(20), pytest.raises(SpecError, match=r"config.json is a pipe \(FIFO\)"):
        run_step("copy_embed", table, {"model": str(directory), "image_size": 64}, pm=dedup_pm)
