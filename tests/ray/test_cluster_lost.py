"""A Ray cluster that dies under a run: ``curate run`` joined to a head from ``ray start --head``
whose processes are all killed while a step's shards run. Ray alone ended the driver 60 s later
from its C++ core (exit status 1, "Failed to connect to GCS within 60 seconds"), the manifest
still "running" and nothing said what was kept. Now the run fails within
CURATE_RAY_LOST_DEADLINE saying so and what was kept, the manifest says "failed", joining the
cluster while it is gone fails within CURATE_RAY_CONNECT_DEADLINE, and a resume with the local
executor finishes with the curated output of a clean run, byte for byte, without redoing the
shards that had finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from curate.errors import CurateError
from curate.testing import run_spec
from tests.conftest import REPO, cli_env, sample_table
from tests.ray.test_loopback_cluster import SWITCH, StartedHead, free_loopback_port, ray_head

pytest.importorskip("ray")

pytestmark = pytest.mark.slow  # a real head (~5 s to start), killed under a run

ROWS, SHARD_SIZE, FINISHED = 40, 5, 3  # 8 shards; 3 finish before the cluster dies


@pytest.fixture(scope="module")
def head() -> Iterator[tuple[str, StartedHead]]:
    """``127.0.0.1:PORT`` of a head of its own (token authentication off, on loopback alone)."""
    port = free_loopback_port()
    with ray_head(port, RAY_AUTH_MODE="disabled", **{SWITCH: "0"}) as started:
        yield f"127.0.0.1:{port}", started


def spec(workdir: Path, executor: Any) -> dict[str, Any]:
    """Shards after the first three wait for ``release``; the output is what the comparison reads."""
    hold = {"log": str(workdir / "calls.log"), "release": str(workdir / "release"), "proceed": FINISHED}
    return {
        "source": {"path": "data.parquet"},
        "steps": [{"step": "hold_back", "params": hold}, {"step": "normalize_text"}],
        "outputs": [{"format": "parquet", "path": "curated.parquet"}],
        "run": {"dir": "run", "shard_size": SHARD_SIZE, "executor": executor},
    }


def markers(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("store/*/shards/*.json"))


def test_a_cluster_that_dies_mid_run_fails_it_saying_what_was_kept_and_a_resume_finishes_it(
        head, workdir, make_plugin_dist, ray_pm, tmp_path, monkeypatch):
    from curate_ray.executor import RayExecutor, RayParams

    address, started = head
    sample_table(ROWS, duplicates=False).write_parquet(workdir / "data.parquet")
    on_the_cluster = spec(workdir, {"name": "ray", "params": {"address": address}})
    (workdir / "spec.yaml").write_text(yaml.safe_dump(on_the_cluster))
    plugin = make_plugin_dist("ray-test-steps", "from tests.ray.steps import curate_register_steps\n")
    # Ray's wait to send its task events to the dead GCS as the driver disconnects (5 s) is cut short.
    env = cli_env([plugin, REPO], RAY_AUTH_MODE="disabled", CURATE_RAY_LOST_DEADLINE="1",
                  RAY_task_events_shutdown_flush_timeout_ms="100", **{SWITCH: "0"})
    command = [sys.executable, "-m", "curate.cli", "run", "spec.yaml", "--quiet"]
    run_dir = workdir / "run"

    driver = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(markers(run_dir)) < FINISHED:
            assert driver.poll() is None, driver.communicate()[0]
            assert time.monotonic() < deadline, "three shards did not finish in time"
            time.sleep(0.1)
        started.stop()  # every process of the cluster, while shard 3 (and the one queued behind it) runs
        output, _ = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)  # its own session: the driver and nothing else
            driver.wait()

    assert driver.returncode == 1, output
    assert f"error: the Ray cluster at {address} stopped answering during step 'hold_back' (shard" in output
    # Whichever of its GCS and raylet crossed the deadline first, the other is named as silent too.
    assert "has not answered for" in output
    assert any(f"its GCS at {address} {said}" in output for said in ("has not answered for", "does not answer either"))
    shards = ROWS // SHARD_SIZE
    assert f"Kept in {run_dir}: the steps before 'hold_back' and {FINISHED} of its {shards} shards" in output
    assert f"'curate run --resume {run_dir}'" in output and "set run.executor to local" in output
    assert "Traceback" not in output
    manifest = yaml.safe_load((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert "stopped answering during step 'hold_back'" in manifest["error"]
    finished = {path.name: path.stat().st_mtime_ns for path in markers(run_dir)}
    assert len(finished) == FINISHED

    # Joining it again while it is gone: a clear error within the deadline, nothing lost.
    monkeypatch.setenv("CURATE_RAY_CONNECT_DEADLINE", "1")
    with pytest.raises(CurateError) as caught, RayExecutor(RayParams(address=address)).session():
        pass
    assert f"the Ray cluster at {address}" in str(caught.value)
    assert "did not answer in 1 s: no TCP connection" in str(caught.value)
    assert {path.name: path.stat().st_mtime_ns for path in markers(run_dir)} == finished

    # Without the cluster: the local executor finishes the run, redoing none of the finished shards.
    (workdir / "release").touch()
    resumed = run_spec(spec(workdir, "local"), workdir, pm=ray_pm)
    assert resumed["status"] == "complete"
    calls = Counter(int(line) for line in (workdir / "calls.log").read_text().split())
    assert all(calls[index] == 1 for index in range(FINISHED)), f"finished shards were redone: {calls}"
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    (clean_dir / "release").touch()
    table = sample_table(ROWS, duplicates=False)
    clean = run_spec(spec(clean_dir, "local"), clean_dir, tables={"data.parquet": table}, pm=ray_pm)
    assert clean["status"] == "complete"
    assert (run_dir / "curated.parquet").read_bytes() == (clean_dir / "run" / "curated.parquet").read_bytes()
