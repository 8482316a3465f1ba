"""The exports read by the ecosystem's plain clients, as a user runs them: the unpatched
``python -m open_clip_train.main`` on the WebDataset shards (several shards, so a reader that
trips over a shard's end fails here), ``datasets.load_dataset("webdataset")`` on the same shards,
and ``datasets.load_dataset("imagefolder")`` on the imagefolder export."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from curate.sink import SinkContext
from curate.step import TableInput
from tests.export.conftest import make_store

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _export(tmp_path: Path, fmt: str, **params) -> Path:
    from curate_export.sinks import ImageFolderSink, WebDatasetSink

    table = make_store(tmp_path / "store", 40)
    source = tmp_path / "input.parquet"
    table.write_parquet(source)
    sink_cls = WebDatasetSink if fmt == "webdataset" else ImageFolderSink
    ctx = SinkContext(run_dir=tmp_path, spec_dir=tmp_path, seed=0, label="export", path=fmt)
    sink = sink_cls(sink_cls.Params(store_dir=str(tmp_path / "store"), **params), ctx)
    sink.write(TableInput([source], dict(table.schema)))
    return tmp_path / fmt


def test_the_installed_webdataset_is_one_open_clip_train_supports():
    import importlib.metadata

    from packaging.requirements import Requirement

    wanted = [Requirement(r) for r in importlib.metadata.requires("open_clip_torch") or []
              if r.startswith("webdataset")]
    assert wanted, "open_clip_torch declares its webdataset range in its 'training' extra"
    installed = importlib.metadata.version("webdataset")
    assert all(installed in requirement.specifier for requirement in wanted), (installed, wanted)


@pytest.mark.filterwarnings("ignore")
def test_plain_open_clip_train_trains_on_the_webdataset_export(tmp_path):
    shards = _export(tmp_path, "webdataset", samples_per_shard=16)
    sizes = json.loads((shards / "sizes.json").read_text())
    assert len(sizes) >= 2
    names = sorted(sizes)
    pattern = str(shards / f"{{{names[0][:-4]}..{names[-1][:-4]}}}.tar")
    model = tmp_path / "model"  # open_clip's own local-dir: convention
    model.mkdir()
    config = json.loads((REPO / "plugins" / "curate_train" / "curate_train_tiny.json").read_text())
    (model / "open_clip_config.json").write_text(json.dumps({"model_cfg": config}))
    command = [
        sys.executable, "-m", "open_clip_train.main", "--train-data", pattern,
        "--train-num-samples", str(sum(sizes.values())), "--dataset-type", "webdataset",
        "--model", f"local-dir:{model}", "--epochs", "2", "--batch-size", "8", "--workers", "1",
        "--precision", "fp32", "--device", "cpu", "--logs", str(tmp_path / "logs"), "--name", "plain",
        "--save-frequency", "2", "--report-to", "", "--warmup", "1",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "logs" / "plain" / "checkpoints" / "epoch_2.pt").is_file()
    assert "KeyError" not in done.stderr


@pytest.mark.filterwarnings("ignore")
def test_datasets_reads_the_webdataset_and_imagefolder_exports(tmp_path):
    from datasets import load_dataset

    shards = _export(tmp_path / "wds", "webdataset", samples_per_shard=16)
    table = load_dataset("webdataset", data_files={"train": sorted(str(p) for p in shards.glob("*.tar"))},
                         split="train", cache_dir=str(tmp_path / "hf"))
    assert table.num_rows == 40
    assert {"txt", "__key__"} <= set(table.column_names)
    assert any(column in table.column_names for column in ("jpg", "png"))
    folder = _export(tmp_path / "if", "imagefolder")
    images = load_dataset("imagefolder", data_dir=str(folder), split="train", cache_dir=str(tmp_path / "hf2"))
    assert images.num_rows == 40
    assert "image" in images.column_names and "text" in images.column_names
    shutil.rmtree(tmp_path / "hf", ignore_errors=True)
