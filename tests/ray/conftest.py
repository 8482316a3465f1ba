"""One real Ray cluster per test module, on loopback with 2 CPUs, started by the executor itself.

Workers import the test steps (``tests.ray.steps``) by name, so the cluster is started with the
repository on PYTHONPATH: its raylet hands that to every worker, including the workers of a
``curate run`` subprocess that joins the cluster by address.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import curate_ray
import pytest

from curate.plugins import PluginManager
from tests.conftest import REPO
from tests.ray import steps

CPUS = 2


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
