"""SIGKILL a real ``curate run`` mid-step, run it again, and get exactly what an uninterrupted run gets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env, kill_when_ready, sample_table

SHARDS = 16


def spec(delay: float) -> dict:
    return {
        "name": "resume",
        "source": {"path": "data.parquet"},
        "steps": [
            {"step": "normalize_text"},
            {"step": "shout", "params": {"delay": delay}},  # slow: the run is killed in here
            {"step": "exact_dedup", "params": {"columns": ["url", "alt_text"]}},
            {"step": "sample", "params": {"fraction": 0.5}},
        ],
        "outputs": [{"format": "parquet", "path": "out.parquet"}],
        "run": {"dir": "run", "shard_size": 10},
    }


def step_files(run_dir: Path) -> dict[str, bytes]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    out = {}
    for record in manifest["steps"]:
        for kind in ("data", "dropped"):
            for path in sorted((Path(record["path"]) / kind).glob("shard-*.parquet")):
                out[f"{record['index']:02d}_{record['label']}/{kind}/{path.name}"] = path.read_bytes()
    out["out.parquet"] = (run_dir / "out.parquet").read_bytes()
    return out


def normalize_done(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / "manifest.json").read_text())["steps"][1]["complete"]
    except (OSError, ValueError, KeyError, IndexError):
        return False


def in_progress_markers(store: Path) -> dict[Path, bytes]:
    """Shard markers of a step that has started but not finished."""
    for step_dir in store.iterdir() if store.exists() else ():
        if (step_dir / "shards").is_dir() and not (step_dir / "_COMPLETE.json").exists():
            return {p: p.read_bytes() for p in sorted((step_dir / "shards").glob("*.json"))}
    return {}


def test_a_killed_run_resumes_to_byte_identical_output(write_spec, workdir, shout_plugin):
    table = sample_table(SHARDS * 10)
    killed_dir, clean_dir = workdir / "killed", workdir / "clean"
    write_spec(spec(delay=0.15), table=table, directory=killed_dir)
    write_spec(spec(delay=0.0), table=table, directory=clean_dir)  # delay is not part of the fingerprint
    command = [sys.executable, "-m", "curate.cli", "run", "spec.yaml", "--quiet"]
    env = cli_env([shout_plugin])

    def three_shards_of_the_slow_step_done() -> dict[Path, bytes] | None:
        if not normalize_done(killed_dir / "run"):  # so the step in progress is the slow one
            return None
        markers = in_progress_markers(killed_dir / "run" / "store")
        return markers if len(markers) >= 3 else None

    done_before_kill = kill_when_ready(command, killed_dir, env, three_shards_of_the_slow_step_done,
                                       what="three shards of the slow step are done")

    manifest = json.loads((killed_dir / "run" / "manifest.json").read_text())
    assert manifest["status"] == "running"  # killed: no chance to say otherwise
    assert 3 <= len(done_before_kill) < SHARDS

    resumed = subprocess.run(command, cwd=killed_dir, env=env, capture_output=True, text=True, timeout=120,
                             check=False)
    assert resumed.returncode == 0, resumed.stderr
    clean = subprocess.run(command, cwd=clean_dir, env=env, capture_output=True, text=True, timeout=120,
                             check=False)
    assert clean.returncode == 0, clean.stderr

    # Shards finished before the kill were not redone (their markers are untouched)...
    for marker, content in done_before_kill.items():
        assert marker.read_bytes() == content
    # ...and every step's output is exactly what an uninterrupted run writes.
    resumed_files, clean_files = step_files(killed_dir / "run"), step_files(clean_dir / "run")
    assert resumed_files.keys() == clean_files.keys()
    assert [name for name in resumed_files if resumed_files[name] != clean_files[name]] == []
    final = json.loads((killed_dir / "run" / "manifest.json").read_text())
    assert final["status"] == "complete"
    assert [r["cached"] for r in final["steps"]][:2] == [True, True]  # source and normalize_text were done
