"""On a cluster without CPUs (a head started with --num-cpus=0, its autoscaler adding none) no
shard can start: the run fails after CURATE_RAY_NO_CPU_DEADLINE naming the cluster's resources,
instead of waiting for ever. One real cluster, started with no CPUs, for the module."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from curate.errors import CurateError
from curate.testing import run_spec
from tests.conftest import sample_table

pytest.importorskip("ray")

pytestmark = pytest.mark.slow  # a real Ray cluster


@pytest.fixture(scope="module")
def cpuless_cluster() -> Iterator[str]:
    """The GCS address of a local cluster with no CPUs and one (logical) GPU, as ``ray start --head
    --num-cpus=0 --num-gpus=1`` makes."""
    import ray
    from curate_ray.executor import LOCAL_OBJECT_STORE_BYTES, _bind_to_loopback, _local_cluster_environment

    _local_cluster_environment()
    _bind_to_loopback(ray)
    ray.init(address="local", num_cpus=0, num_gpus=1, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
             logging_level=logging.WARNING)
    try:
        assert ray.cluster_resources().get("CPU", 0) == 0
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def spec(step: dict, gpus: float = 0) -> dict:
    return {"source": {"path": "data.parquet"}, "steps": [step],
            "run": {"shard_size": 5, "executor": {"name": "ray", "params": {"num_gpus_per_actor": gpus}}}}


ACTORS = {"step": "count_setups", "params": {"log_dir": "log"}}


@pytest.mark.parametrize(("step", "gpus"), [({"step": "normalize_text"}, 0), (ACTORS, 0), (ACTORS, 1)],
                         ids=["tasks", "actors", "gpu-actors"])
def test_shards_on_a_cluster_without_cpus_fail_after_the_deadline(cpuless_cluster, ray_pm, workdir, monkeypatch,
                                                                   step, gpus):
    """GPU actors too: the cluster has the GPU they need, and waits for a CPU (it was refused as
    if it had no GPU)."""
    monkeypatch.setenv("CURATE_RAY_NO_CPU_DEADLINE", "1")
    with pytest.raises(CurateError) as caught:
        run_spec(spec(step, gpus), workdir, tables={"data.parquet": sample_table(10)}, pm=ray_pm)
    text = str(caught.value)
    assert f"the shards of step '{step['step']}' waited 1 s for a CPU, and the Ray cluster of this run has none" in text
    assert "its resources: GPU: 1, memory: " in text and "object_store_memory: 0.2 GiB" in text and "node:" not in text
    assert "CURATE_RAY_NO_CPU_DEADLINE=SECONDS (now 1)" in caught.value.hint


def test_the_gcs_of_a_real_cluster_answers_the_connection_check(cpuless_cluster):
    from curate_ray.address import to_join
    from curate_ray.probe import check_answers

    check_answers(to_join(cpuless_cluster), 10)  # returns: this is what ray.init joins
