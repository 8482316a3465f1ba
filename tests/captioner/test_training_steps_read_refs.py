"""``train_captioner`` and ``preference_captioner`` on a real run: world → download (img2dataset,
loopback) → the training step, reading each row's ``image: {shard, key}`` from the run's store.

The download step writes its tars' paths relative to the run's store. Before, ``train_captioner``
read them without the store (``image shard …/00000.tar does not exist``) and
``preference_captioner`` failed on any ``{shard, key}`` (it keyed its images by them:
``unhashable type: 'dict'``).

That the trainer sees the referenced images: the test takes each row's member out of its tar with
``tarfile`` and trains the same step on those files (``images: path``) in a second run: the same
tensors, bit for bit; on the next row's files instead, different ones. Both runs are in this
process (``run_spec``, the engine ``curate run`` drives): a ``curate run`` subprocess spent most
of its time importing torch and the captioner again.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import polars as pl
import pytest

from curate.testing.runner import read_step_output, run_spec

pytestmark = [pytest.mark.network, pytest.mark.slow]

ROWS = 6
PAIRS = ("SELECT *, alt_text || ' today' AS chosen, 'nothing at all' AS rejected, 'textual' AS dimension "
         "FROM input")
DOWNLOAD = {"image_size": 64, "resize_mode": "no", "timeout": 5, "allowed_hosts": ["127.0.0.1"], "threads": 4,
            "drop_failed": True}


def run(work: Path, name: str, source: dict, steps: list[dict]) -> dict:
    """A run of a spec (in this process, through the engine) in ``work/name``; its manifest."""
    spec = {"name": name, "source": source, "steps": steps, "run": {"report": False}}
    return run_spec(spec, work / name)


def training(step: str, label: str, **params: object) -> dict:
    params = {"init": "world", "steps": 1, "batch_size": 2, "device": "cpu", **params}
    return {"step": step, "name": label, "params": params}


def weights(manifest: dict, label: str) -> str:
    """A digest of the trained captioner's tensors, by name: what the step learned, read from where
    the step's summary says it saved the captioner."""
    from safetensors.numpy import load_file

    (record,) = [record for record in manifest["steps"] if record["label"] == label]
    tensors = load_file(Path(record["path"]) / record["summary"]["model"] / "model.safetensors")
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode() + b"\0" + tensors[name].tobytes())
    return digest.hexdigest()


def members(table: pl.DataFrame, store: Path, into: Path) -> list[str]:
    """Each row's image taken out of the download step's tar (``tarfile``, not :mod:`curate.images`)
    into ``into/<row>.jpg``; the file names."""
    into.mkdir()
    names = []
    for row, ref in enumerate(table["image"].to_list()):
        assert not Path(ref["shard"]).is_absolute()  # relative to the run's store: the download step's way
        with tarfile.open(store / ref["shard"]) as archive:
            data = archive.extractfile(f"{ref['key']}.jpg").read()
        (into / f"{row}.jpg").write_bytes(data)
        names.append(f"{row}.jpg")
    return names


STEPS = {"train_captioner": {"stage": 1}, "preference_captioner": {}}


def test_both_training_steps_train_on_the_images_their_refs_name(tmp_path: Path) -> None:
    """Run 1: world → download → sql (PAIRS) → each training step on the refs. Run 2: each step on
    the same rows with each image as a file taken from its tar (``on_paths``) and the next row's
    (``on_others``). One run of each for both steps: the world, its download and two runs
    are the test's cost."""
    source = {"format": "world", "params": {"n": ROWS, "seed": 7, "fault_rate": 0.0, "port": 0, "dir": "world"}}
    refs = run(tmp_path, "refs", source, [{"step": "download", "params": DOWNLOAD},
                                          {"step": "sql", "params": {"query": PAIRS}},
                                          *(training(step, f"{step}_on_refs", **params) for step, params in STEPS.items())])
    table = read_step_output(refs, "sql")
    assert table.height == ROWS and table["image"].null_count() == 0
    for step in STEPS:
        assert read_step_output(refs, f"{step}_on_refs").equals(table)  # rows pass through
    files = members(table, Path(refs["store_dir"]), tmp_path / "extracted")
    rows = table.drop("uid", "image").with_columns(pl.Series("image_path", files),
                                                   pl.Series("other_path", files[1:] + files[:1]))
    rows.write_parquet(tmp_path / "rows.parquet")
    paths = run(tmp_path, "paths", {"format": "parquet", "path": str(tmp_path / "rows.parquet")},
                [training(step, f"{step}_{column}", image_column=f"{column.removeprefix('on_')}_path",
                          images="path", image_root=str(tmp_path / "extracted"), **params)
                 for step, params in STEPS.items() for column in ("on_image", "on_other")])
    for step in STEPS:
        assert weights(refs, f"{step}_on_refs") == weights(paths, f"{step}_on_image"), step
        assert weights(paths, f"{step}_on_other") != weights(paths, f"{step}_on_image"), step
