"""A Ray cluster joined through Ray's client (``ray://HOST:PORT``) that dies under a run: the run
fails as a lost cluster (ClusterLost: what was kept, how to go on), as one joined at its GCS does
(test_cluster_lost), the watch asking the client server. Ray's client blocked the driver's
``ray.wait`` while it tried to reconnect (RAY_CLIENT_RECONNECT_GRACE_PERIOD, 30 s) and then raised
ConnectionError, which ended the run as an internal error. Ray's client needs grpcio
(``ray[client]``), on the head and here: without it the test is skipped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, cli_env, sample_table
from tests.ray.test_cluster_lost import FINISHED, ROWS, markers, spec
from tests.ray.test_loopback_cluster import SWITCH, StartedHead, free_loopback_port, ray_head

pytest.importorskip("ray")
grpc = pytest.importorskip("grpc", reason="Ray's client needs ray[client] (grpcio)")

pytestmark = pytest.mark.slow  # a real head (~5 s to start), killed under a run

# Where this process imports grpc from: the head's client server and the driver import it too.
GRPC_PATH = Path(grpc.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client_head() -> Iterator[tuple[str, StartedHead]]:
    """``ray://127.0.0.1:PORT`` of a head of its own with a client server, on loopback alone."""
    port, client_port = free_loopback_port(), free_loopback_port()
    pythonpath = os.pathsep.join(map(str, [GRPC_PATH, REPO, REPO / "plugins"]))
    with ray_head(port, f"--ray-client-server-port={client_port}", RAY_AUTH_MODE="disabled",
                  PYTHONPATH=pythonpath, **{SWITCH: "0"}) as started:
        yield f"ray://127.0.0.1:{client_port}", started


def test_a_cluster_joined_through_its_client_that_dies_mid_run_fails_it(client_head, workdir,
                                                                        make_plugin_dist):
    address, started = client_head
    sample_table(ROWS, duplicates=False).write_parquet(workdir / "data.parquet")
    on_the_cluster = spec(workdir, {"name": "ray", "params": {"address": address}})
    (workdir / "spec.yaml").write_text(yaml.safe_dump(on_the_cluster))
    plugin = make_plugin_dist("ray-test-steps", "from tests.ray.steps import curate_register_steps\n")
    # Ray's client blocks each call while it reconnects to the lost client server (30 s unless set),
    # then raises ConnectionError: 5 s here, past the run's own verdict (1 s).
    env = cli_env([GRPC_PATH, plugin, REPO], RAY_AUTH_MODE="disabled", CURATE_RAY_LOST_DEADLINE="1",
                  RAY_CLIENT_RECONNECT_GRACE_PERIOD="5", RAY_task_events_shutdown_flush_timeout_ms="100",
                  **{SWITCH: "0"})
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
        started.stop()
        output, _ = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 1, output
    assert f"error: the Ray cluster at {address} stopped answering during step 'hold_back'" in output
    assert f"its client server at {address} has not answered for" in output
    assert "Traceback" not in output
    manifest = yaml.safe_load((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
