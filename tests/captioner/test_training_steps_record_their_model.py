"""``train_captioner`` and ``preference_captioner`` on a run: the captioner their summary names is
there once the run is done.

A table step writes into ``<fingerprint>.partial``, which the engine renames when the step is done.
The steps recorded ``summary.model`` as the absolute path they had written to: the ``.partial``
folder, gone after the run. They record ``artifacts/captioner`` now, relative to the step's folder
(the record's ``path``), as metadata_balance records its counts file.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from curate.plugins import PluginManager
from curate.testing import run_spec
from tests.captioner.conftest import images

ROWS = 8
PAIRS = ("SELECT *, alt_text || ' today' AS chosen, 'nothing at all' AS rejected, 'textual' AS dimension "
         "FROM input")


def training(step: str, label: str, root: Path, **params: object) -> dict:
    return {"step": step, "name": label, "params": {"init": "world", "steps": 1, "batch_size": 2, "device": "cpu",
                                                     "images": "path", "image_root": str(root), **params}}


@pytest.mark.parametrize("fuse_heads", [False, True], ids=["alone", "preference_heads_a_group"])
def test_the_captioner_a_training_step_records_is_there_after_the_run(pm: PluginManager, tmp_path: Path,
                                                                        fuse_heads: bool) -> None:
    from curate_captioner.model import Captioner

    root = tmp_path / "images"
    root.mkdir()
    for index, image in enumerate(images(ROWS)):
        image.save(root / f"{index}.png")
    table = pl.DataFrame({"url": [f"http://127.0.0.1/{i}.png" for i in range(ROWS)],
                          "image": [f"{i}.png" for i in range(ROWS)],
                          "alt_text": [f"a red circle number {i}" for i in range(ROWS)]})
    spec = {"name": "trained", "source": {"path": "rows.parquet"},
            "steps": [{"step": "sql", "params": {"query": PAIRS}},
                      training("train_captioner", "sft", root, stage=1),
                      training("preference_captioner", "dpo", root),
                      {"step": "filter", "params": {"where": "length(alt_text) > 0", "reason": "empty"}}],
            "run": {"fuse_heads": fuse_heads, "report": False}}
    manifest = run_spec(spec, tmp_path / "work", tables={"rows.parquet": table}, pm=pm)
    records = {r["label"]: r for r in manifest["steps"]}
    assert ("fused" in records["dpo"]) is fuse_heads
    for label in ("sft", "dpo"):
        record = records[label]
        model = Path(record["path"]) / record["summary"]["model"]  # an absolute path stays itself
        assert (model / "model.safetensors").is_file(), (label, record["summary"]["model"])
        assert record["summary"]["model"] == "artifacts/captioner"
        assert not Path(record["path"] + ".partial").exists()
        Captioner.load(model)  # a captioner realign's model: takes
