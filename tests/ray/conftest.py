"""One real Ray cluster per test module, on loopback with 2 CPUs, started by the executor itself.

Workers import the test steps (``tests.ray.steps``) by name, so the cluster is started with the
repository on PYTHONPATH: its raylet hands that to every worker, including the workers of a
``curate run`` subprocess that joins the cluster by address.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import curate_ray
import pytest

from curate.plugins import PluginManager
from tests.conftest import REPO
from tests.ray import steps
from tests.ray.connecting import Greet, ray_host

CPUS = 2
LOCK_WAIT_SECONDS = 900  # longer than any Ray test module takes


@pytest.fixture(scope="module", autouse=True)
def _one_ray_module_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite runs in parallel processes (pytest-xdist, one test file per process), and Ray
    modules must not overlap: ``address: auto`` finds any raylet running on this machine, so a
    cluster another process started would be what those tests join. A lock in the folder that
    every process's temporary folders share keeps the Ray modules one after another."""
    shared = tmp_path_factory.getbasetemp().parent  # pytest-N/ under xdist (each process has popen-gwK)
    with open(shared / "ray-modules.lock", "w") as lock:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test process held {shared / 'ray-modules.lock'} for {LOCK_WAIT_SECONDS} s")
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """The GCS address of a local cluster that every run in the module joins (and leaves running)."""
    pytest.importorskip("ray")
    import ray
    from curate_ray.executor import RayExecutor, RayParams

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([saved] if saved else []))
    try:
        session = RayExecutor(RayParams(num_cpus=CPUS)).session()
        session.__enter__()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    try:
        assert ray.cluster_resources()["CPU"] == CPUS
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), f"the local cluster listens on {address}, not on loopback"
        yield address
    finally:
        session.__exit__(None, None, None)
    assert not ray.is_initialized()


@pytest.fixture
def ray_pm(pm: PluginManager, register_plugin: Any) -> PluginManager:
    """The basics plugin, the ray executor and the test steps."""
    register_plugin(curate_ray, "ray", version=curate_ray.__version__)
    register_plugin(steps, "ray_test_steps")
    return pm


@pytest.fixture
def server() -> Iterator[Callable[..., int]]:
    """``server(greet, host=ray_host(), port=0)``: the port of a server on ``host`` that accepts one
    connection, runs ``greet`` on it and keeps the connection it returns open, silent, until the
    test ends."""
    listeners: list[socket.socket] = []
    connections: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(greet: Greet, host: str | None = None, port: int = 0) -> int:
        listener = socket.create_server((host or ray_host(), port))
        listener.settimeout(30)  # the test's own bound, should the probe never connect
        listeners.append(listener)

        def accept() -> None:
            try:
                connection, _ = listener.accept()
                connection.settimeout(30)
                connections.append(connection)
                connections.append(greet(connection))
            except OSError:  # the probe gave up or never came: its failure is the test's
                pass

        threads.append(threading.Thread(target=accept, daemon=True))
        threads[-1].start()
        return listener.getsockname()[1]

    yield start
    for listener in listeners:  # a server the probe never came to stops waiting (accept fails)
        try:
            listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    for thread in threads:
        thread.join(timeout=30)
    for sock in listeners + connections:
        sock.close()
