"""Workers, actors and the driver die; runs still finish with the right rows, and finished
shards are never redone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from curate.errors import StepError
from curate.testing import run_spec
from curate.testing.runner import read_step_output
from tests.conftest import REPO, cli_env, sample_table

pytest.importorskip("ray")

pytestmark = pytest.mark.slow  # real Ray cluster, real crashes

ROWS, SHARD_SIZE = 40, 5  # 8 shards


def crash_spec(step: str, guard_dir: Path, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "source": {"path": "data.parquet"},
        "steps": [
            {"step": step, "params": {"shard": 3, "guard_dir": str(guard_dir)}},
            {"step": "normalize_text"},
        ],
        "run": {"shard_size": SHARD_SIZE, "executor": {"name": "ray", "params": params or {}}},
    }


def assert_every_row_arrived(manifest: dict[str, Any]) -> None:
    assert manifest["status"] == "complete"
    assert [s["rows_out"] for s in manifest["steps"]] == [ROWS, ROWS, ROWS]
    assert read_step_output(manifest, "normalize_text")["uid"].n_unique() == ROWS


def test_a_worker_killed_mid_shard_is_retried(ray_cluster, ray_pm, workdir):
    guard = workdir / "guard"
    manifest = run_spec(crash_spec("crash_once", guard), workdir, tables={"data.parquet": sample_table(ROWS)},
                        pm=ray_pm)
    assert (guard / "crashed-3").exists(), "the worker did die"
    assert_every_row_arrived(manifest)


def test_an_actor_killed_mid_shard_is_restarted_and_loads_its_model_again(ray_cluster, ray_pm, workdir):
    guard = workdir / "guard"
    spec = crash_spec("crash_once_model", guard, {"actors": 2})
    manifest = run_spec(spec, workdir, tables={"data.parquet": sample_table(ROWS)}, pm=ray_pm)
    assert (guard / "crashed-3").exists()
    assert len(list(guard.glob("setup-*"))) == 3, "two actors, one of them restarted once"
    assert_every_row_arrived(manifest)


def test_a_worker_that_dies_more_often_than_allowed_fails_the_run_naming_the_shard(ray_cluster, ray_pm, workdir):
    spec = crash_spec("crash_once", workdir / "guard", {"max_retries": 0})
    with pytest.raises(StepError) as caught:
        run_spec(spec, workdir, tables={"data.parquet": sample_table(ROWS)}, pm=ray_pm)
    assert (caught.value.step_label, caught.value.shard) == ("crash_once", 3)
    assert "its Ray worker died on each of 1 try" in str(caught.value)


def _markers(run_dir: Path) -> dict[int, int]:
    """Shard index → marker mtime (ns) of the one shard-scope step in the spec."""
    return {int(p.stem): p.stat().st_mtime_ns for p in run_dir.glob("store/*/shards/*.json")}


def test_a_killed_driver_resumes_without_redoing_finished_shards(ray_cluster, workdir, make_plugin_dist):
    """``curate run`` in a subprocess, joined to the module's cluster, is SIGKILLed after three
    shards; running the same command again finishes and redoes none of those three."""
    sample_table(ROWS).write_parquet(workdir / "data.parquet")
    log, release = workdir / "calls.log", workdir / "release"
    spec = {
        "source": {"path": "data.parquet"},
        "steps": [{"step": "hold_back", "params": {"log": str(log), "release": str(release), "proceed": 3}}],
        "run": {"dir": "run", "shard_size": SHARD_SIZE,
                "executor": {"name": "ray", "params": {"address": ray_cluster}}},
    }
    (workdir / "spec.yaml").write_text(yaml.safe_dump(spec))
    plugin = make_plugin_dist("ray-test-steps", "from tests.ray.steps import curate_register_steps\n")
    command = [sys.executable, "-m", "curate.cli", "run", "spec.yaml", "--quiet"]
    env = cli_env([plugin, REPO])
    run_dir = workdir / "run"

    with open(workdir / "first.log", "w") as output:
        driver = subprocess.Popen(command, cwd=workdir, env=env, stdout=output, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while len(_markers(run_dir)) < 3:
                assert driver.poll() is None, (workdir / "first.log").read_text()
                assert time.monotonic() < deadline, "three shards did not finish in time"
                time.sleep(0.1)
        finally:
            os.killpg(driver.pid, signal.SIGKILL)  # its own session: the driver and nothing else
            driver.wait()
    finished = _markers(run_dir)
    assert len(finished) == 3
    assert yaml.safe_load((run_dir / "manifest.json").read_text())["status"] == "running"

    release.touch()
    second = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stdout + second.stderr

    manifest = yaml.safe_load((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["steps"][1]["rows_out"] == ROWS
    calls = Counter(int(line) for line in log.read_text().split())
    assert set(calls) == set(range(ROWS // SHARD_SIZE))
    assert all(calls[index] == 1 for index in finished), f"finished shards were redone: {calls}"
    after = _markers(run_dir)
    assert {index: after[index] for index in finished} == finished, "a finished shard's marker was rewritten"
