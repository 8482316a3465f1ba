"""The hint curate gives for a Ray cluster that listens on loopback alone works: a real head started
with Ray's loopback switch off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start --head``), which is
what makes it listen on 127.0.0.1 only, is not reached by a ``curate run`` naming
``127.0.0.1:PORT`` (Ray dials this machine's network address: the run fails within
CURATE_RAY_CONNECT_DEADLINE, naming the switch), and is joined, and the run finishes, once the
driver has the switch off too.

The head is started by ``ray start`` in a session of its own and stopped by ending that process
group (``ray stop`` would stop every Ray cluster on the machine). Token authentication is off on
both sides: whether a head asks for a token depends on ``~/.ray/auth_token``, which is not this
test's subject."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import cli_env, sample_table

pytest.importorskip("ray")

pytestmark = pytest.mark.slow  # a real head (~5 s to start) and two curate runs

SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
DEADLINE = 5  # seconds the run that cannot reach the head waits for it
ROWS = 20
STOP_SECONDS = 30


def network_address() -> str:
    """This machine's address as Ray sees it with its loopback switch on (Linux's default)."""
    from ray._private import ray_constants, services

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = True
    try:
        return services.get_node_ip_address()
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def changed(env: dict[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """``env`` with ``changes`` made: a value sets its variable, None unsets it."""
    env = dict(env)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def stop_cluster(group: int, temp_dir: str) -> None:
    """End every process the head left running: its process group (GCS, raylet, agents), and any
    process naming its temporary folder (workers), which is this fixture's own. Nothing in a
    throwaway cluster needs a graceful stop, so SIGKILL (the GCS server outlasts SIGTERM for 30 s)."""
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + STOP_SECONDS
    while left := _live(group, temp_dir):
        if time.monotonic() > deadline:
            raise AssertionError(f"the Ray head's processes outlived SIGKILL for {STOP_SECONDS} s: {left}")
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def _live(group: int, temp_dir: str) -> list[int]:
    """Processes, not zombies, in ``group`` or naming ``temp_dir`` on their command line."""
    listing = subprocess.run(["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    found = []
    for line in listing.splitlines():
        pid, pgid, stat, args = (line.split(None, 3) + [""])[:4]
        if not stat.startswith("Z") and (int(pgid) == group or temp_dir in args) and int(pid) != os.getpid():
            found.append(int(pid))
    return found


@dataclass(frozen=True)
class StartedHead:
    output: str  # what ray start printed
    ray_tmpdir: str  # RAY_TMPDIR for a driver whose address: auto finds this head's cluster file
    group: int  # the process group `ray start` ran in, which holds the processes it left running
    temp_dir: str  # its --temp-dir, which its workers name on their command lines

    def stop(self) -> None:
        """End the head's processes now (as its machine going down would), not only on exit."""
        stop_cluster(self.group, self.temp_dir)


@contextmanager
def ray_head(port: int, *flags: str, **env: str | None) -> Iterator[StartedHead]:
    """A head started by ``ray start --head`` on ``port`` (1 CPU, no dashboard, and ``flags``), with
    ``env`` over the test's environment (None: unset), in a session of its own. On exit its processes are ended and
    its temporary folder removed."""
    # Ray's socket paths must stay short (a Unix socket's path is at most ~107 bytes): not under pytest's tmp.
    base = tempfile.mkdtemp(prefix="curate-ray-")
    temp_dir = os.path.join(base, "ray")  # where Ray looks under RAY_TMPDIR=base
    environment = changed(cli_env(RAY_USAGE_STATS_ENABLED="0"), env)
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}",
               "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}",
               *flags]
    # A session of its own: its process group holds every process it leaves running.
    starter = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = starter.communicate(timeout=120)
        assert starter.returncode == 0, f"ray start failed:\n{output}"
        yield StartedHead(output, base, starter.pid, temp_dir)
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait(timeout=30)
        stop_cluster(starter.pid, temp_dir)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def loopback_head() -> Iterator[str]:
    """``127.0.0.1:PORT`` of a running head that listens on loopback alone."""
    host = network_address()
    if ipaddress.ip_address(host).is_loopback:
        pytest.skip("this machine has no network address: Ray dials a loopback host as written")
    port = free_loopback_port()
    with ray_head(port, **{SWITCH: "0", "RAY_AUTH_MODE": "disabled"}):
        with pytest.raises(ConnectionRefusedError):  # else the test would show nothing
            socket.create_connection((host, port), timeout=10).close()
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
        yield f"127.0.0.1:{port}"


def curate_run(workdir: Path, address: str, **extra: str | None) -> subprocess.CompletedProcess[str]:
    """``curate run`` of a one-step spec on the cluster at ``address``, with ``extra`` over the
    environment (None: unset), token authentication off unless ``extra`` says otherwise."""
    sample_table(ROWS, duplicates=False).write_parquet(workdir / "data.parquet")
    spec = {
        "source": {"path": "data.parquet"},
        "steps": [{"step": "normalize_text"}],
        "run": {"dir": "run", "shard_size": 5, "executor": {"name": "ray", "params": {"address": address}}},
    }
    (workdir / "spec.yaml").write_text(yaml.safe_dump(spec))
    env = cli_env(CURATE_RAY_CONNECT_DEADLINE=str(DEADLINE), RAY_AUTH_MODE="disabled")
    if SWITCH not in extra:
        env.pop(SWITCH, None)  # as a shell on Linux has it (a local cluster in this process sets it)
    env = changed(env, extra)
    return subprocess.run([sys.executable, "-m", "curate.cli", "run", "spec.yaml"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_without_the_switch_the_run_fails_within_the_deadline_naming_it(loopback_head, workdir):
    port = loopback_head.rsplit(":", 1)[1]
    done = curate_run(workdir, loopback_head)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert f"the Ray cluster at {loopback_head} (Ray connects to it as {network_address()}:{port}) did not " \
        f"answer in {DEADLINE} s: no TCP connection" in output
    assert f"where the cluster listens on loopback only, set {SWITCH}=0 for this run" in output
    assert "Traceback" not in output


def test_with_the_switch_off_the_run_joins_the_cluster_and_finishes(loopback_head, workdir):
    done = curate_run(workdir, loopback_head, **{SWITCH: "0"})
    # ray.init with an address joins that cluster or fails: it never starts one of its own
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = yaml.safe_load((workdir / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert [step["rows_out"] for step in manifest["steps"]] == [ROWS, ROWS]
