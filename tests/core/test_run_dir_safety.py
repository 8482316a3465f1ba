"""The run directory and its outputs: what `curate run --resume` runs, which paths validation
refuses (curate's own files, the user's files, devices), and damaged run directories, each a
short message naming the path and the fix, never an internal error."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import sample_table

BASE = {
    "name": "base",
    "source": {"path": "data.parquet"},
    "steps": [{"step": "normalize_text"}, {"step": "filter", "params": {"where": "score > 0.5"}},
              {"step": "exact_dedup", "params": {"columns": ["url"]}}],
    "outputs": [{"format": "parquet", "path": "out.parquet"}],
    "run": {"dir": "runs/{name}", "shard_size": 10},
}


def spec_with(**changes) -> dict:
    spec = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        spec[key] = value
    return spec


def test_resume_runs_the_saved_spec_not_the_edited_original(curate_main, write_spec, workdir, monkeypatch):
    # The spec lives in a folder of its own, so its relative source path is relative to that folder.
    specs = workdir / "specs"
    path = write_spec(spec_with(run={"dir": "run", "shard_size": 10}), table=sample_table(40), directory=specs)
    first = curate_main("run", "specs/spec.yaml", "--quiet")
    assert first.code == 0, first
    saved = (workdir / "run" / "spec.yaml").read_text()
    rows = [r["rows_out"] for r in json.loads((workdir / "run" / "manifest.json").read_text())["steps"]]

    edited = spec_with(run={"dir": "run", "shard_size": 10})
    edited["steps"][1]["params"]["where"] = "score > 0.9"
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    monkeypatch.chdir(workdir.parent)  # relative paths must not depend on where resume is called
    resumed = curate_main("run", "--resume", "work/run", "--quiet")
    assert resumed.code == 0, resumed
    assert "has changed since this run started" in resumed.stderr
    assert f"curate run {path} --run-dir work/run" in resumed.stderr
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    assert [r["rows_out"] for r in manifest["steps"]] == rows
    assert all(r["cached"] for r in manifest["steps"])
    assert (workdir / "run" / "spec.yaml").read_text() == saved
    assert manifest["spec_path"] == str(path)  # a later resume still finds the original directory


def test_resume_of_an_unchanged_spec_says_nothing(curate_main, write_spec, workdir):
    write_spec(spec_with(run={"dir": "run", "shard_size": 10}), table=sample_table(40))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    resumed = curate_main("run", "--resume", "run", "--quiet")
    assert resumed.code == 0, resumed
    assert "has changed since" not in resumed.stderr


def test_resume_without_a_saved_spec_says_how_to_run_again(curate_main, write_spec, workdir):
    write_spec(spec_with(run={"dir": "run", "shard_size": 10}), table=sample_table(40))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    (workdir / "run" / "spec.yaml").unlink()
    resumed = curate_main("run", "--resume", "run", "--quiet")
    assert resumed.code == 2, resumed
    assert "has no spec.yaml" in resumed.stderr and "--run-dir run" in resumed.stderr
    assert "internal error" not in resumed.stderr
