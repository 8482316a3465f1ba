"""``curate inspect`` says which finished steps' stored files are gone or changed (curate.storecheck).

It printed the funnel and "status complete" from the manifest alone, with the whole store deleted or
a step's shard cut short; the run directory's views then failed with raw DuckDB errors.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl

from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

TABLE = pl.DataFrame({"url": [f"u{i}" for i in range(30)], "alt_text": ["x" * (i % 7 + 1) for i in range(30)]})
SPEC = {"name": "s", "source": {"path": "data.parquet"},
        "steps": [{"step": "filter", "params": {"where": "length(alt_text) > 2"}},
                  {"step": "exact_dedup", "params": {"columns": ["alt_text"]}}],
        "run": {"dir": "run", "report": False}}


def step_dir(workdir: Path, label: str) -> Path:
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    (record,) = [r for r in manifest["steps"] if r["label"] == label]
    return Path(record["path"])


def test_inspect_names_missing_cut_and_changed_files(curate_main, write_spec, workdir):
    write_spec(SPEC, table=TABLE)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    clean = curate_main("inspect", "run", "--verify")
    assert clean.code == 0 and "not as it was stored" not in clean.stdout, clean

    shard = next((step_dir(workdir, "filter") / "data").glob("*.parquet"))
    data = shard.read_bytes()
    shard.write_bytes(data[:-10])  # cut short
    shown = curate_main("inspect", "run")
    assert shown.code == 0, shown
    assert "step 'filter' is not as it was stored" in shown.stdout and "its marker recorded" in shown.stdout
    assert "--resume" in shown.stdout

    middle = len(data) // 2  # the same size, one byte changed: only --verify reads the bytes
    shard.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
    assert "not as it was stored" not in curate_main("inspect", "run").stdout
    verified = curate_main("inspect", "run", "--verify")
    assert verified.code != 0 and "step 'filter' is not as it was stored" in verified.stdout, verified

    shutil.rmtree(step_dir(workdir, "exact_dedup"))
    shown = curate_main("inspect", "run").stdout
    assert "step 'exact_dedup' is not as it was stored: its folder" in shown and "is gone" in shown

    shard.write_bytes(data)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0  # recomputed
    assert curate_main("inspect", "run", "--verify").code == 0


def test_inspect_names_a_step_whose_input_changed_since_it_ran(curate_main, write_spec, workdir):
    """A step recomputed with other rows since the step after it ran (a run sharing the store):
    the step after it is not what its input now holds (before, inspect said nothing)."""
    write_spec(SPEC, table=TABLE)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    marker = step_dir(workdir, "exact_dedup") / "_COMPLETE.json"
    stats = json.loads(marker.read_text())
    marker.write_text(json.dumps({**stats, "input_digest": "0" * 64}))  # ran on another input
    shown = curate_main("inspect", "run")
    assert shown.code == 0, shown
    assert ("step 'exact_dedup' is not as it was stored: its input changed since it ran (step 'filter' was "
            "recomputed)") in shown.stdout, shown


def test_inspect_json_verify_checks_reports_and_exits_as_the_text_does(curate_main, write_spec, workdir):
    """``inspect --json --verify`` printed the manifest and exited 0 without checking anything, the
    command a CI integrity gate runs, while ``inspect --verify`` exited non-zero on the same run."""
    write_spec(SPEC, table=TABLE)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    clean = curate_main("inspect", "run", "--json", "--verify")
    assert clean.code == 0 and json.loads(clean.stdout)["damaged"] == [], clean
    assert json.loads(clean.stdout)["verified"] is True

    shard = next((step_dir(workdir, "filter") / "data").glob("*.parquet"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # only a check that reads the bytes sees it
    shard.write_bytes(bytes(data))
    text = curate_main("inspect", "run", "--verify")
    shown = curate_main("inspect", "run", "--json", "--verify")
    assert shown.code == text.code != 0, shown
    (entry,) = json.loads(shown.stdout)["damaged"]
    assert entry["step"] == "filter" and "marker recorded" in entry["problem"]
    assert "not as stored" in shown.stderr and "damaged" in shown.stderr
    unverified = curate_main("inspect", "run", "--json")
    assert unverified.code == 0 and json.loads(unverified.stdout)["damaged"] == []


def test_inspect_json_says_a_run_no_process_holds_has_stopped(curate_main, write_spec, workdir):
    """After SIGKILL (or the OOM killer) the manifest says "running" for good: the text view said
    "stopped", the JSON "running", and a poller waiting for it to change waited forever."""
    from curate.lock import DirectoryLock

    write_spec(SPEC, table=TABLE)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    path = workdir / "run" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "status": "running"}))  # what a kill leaves
    shown = curate_main("inspect", "run", "--json")
    assert shown.code == 0, shown
    data = json.loads(shown.stdout)
    assert (data["status"], data["state"], data["lock_held"]) == ("running", "stopped", False)
    assert "status stopped: no process runs it now" in curate_main("inspect", "run").stdout

    lock = DirectoryLock(workdir / "run", "run directory")
    lock.acquire()
    try:
        data = json.loads(curate_main("inspect", "run", "--json").stdout)
    finally:
        lock.release()
    assert (data["status"], data["state"], data["lock_held"]) == ("running", "running", True)
