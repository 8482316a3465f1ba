"""The Ray executor gives what the local executor gives: the same rows, drops, lineage and run
directory; model steps load their model once per actor; step errors name the step and shard."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.errors import CurateError, StepError
from curate.plugins import PluginManager
from curate.testing import run_spec
from curate.testing import strategies as cst
from curate.testing.runner import read_step_output
from tests.conftest import sample_table

pytest.importorskip("ray")

pytestmark = pytest.mark.slow  # every test runs specs on a real Ray cluster

RAY = {"name": "ray"}
LOCAL = {"name": "local"}


def generic_spec(executor: dict[str, Any], data: Path, shard_size: int = 5) -> dict[str, Any]:
    """Every generic step, shard-scope (run on Ray) and table-scope (run in the driver)."""
    return {
        "name": "generic",
        "source": {"path": str(data)},
        "steps": [
            {"step": "filter", "params": {"where": "alt_text IS NOT NULL AND length(alt_text) >= 2",
                                          "reason": "too_short"}},
            {"step": "normalize_text"},
            {"step": "sample", "params": {"fraction": 0.7}},
            {"step": "sql", "params": {"per_shard": True, "query":
                                       "SELECT uid, url, lower(alt_text) AS alt_text FROM input WHERE url IS NOT NULL"}},
            {"step": "exact_dedup", "params": {"columns": ["alt_text"]}},
        ],
        "run": {"shard_size": shard_size, "executor": executor},
    }


def data(table: pl.DataFrame, directory: Path) -> Path:
    """One input file for both runs: the source's fingerprint covers its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "data.parquet"
    table.write_parquet(path)
    return path


def run(spec: dict[str, Any], workdir: Path, table: pl.DataFrame | None, pm: PluginManager) -> dict[str, Any]:
    return run_spec(spec, workdir, tables={"data.parquet": table} if table is not None else None, pm=pm)


def outcome(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a run produced, independent of where it ran: funnel, final rows, lineage."""
    assert manifest["status"] == "complete"
    last = manifest["steps"][-1]["label"]
    con = duckdb.connect(str(Path(manifest["run_dir"]) / "curate.duckdb"), read_only=True)
    try:
        lineage = Counter(con.sql("SELECT uid, step, reason, duplicate_of FROM lineage").fetchall())
    finally:
        con.close()
    return {
        "funnel": [(s["label"], s["rows_in"], s["rows_out"], s["dropped"], s["fingerprint"])
                   for s in manifest["steps"]],
        "rows": Counter(read_step_output(manifest, last).rows()),
        "lineage": lineage,
    }


def layout(run_dir: Path) -> list[str]:
    """Every file and folder of the run, less hidden ones and what is in hidden folders (the store's
    .curate-runs/, named by the run directory's path)."""
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")
                  if not any(part.startswith(".") for part in p.relative_to(run_dir).parts))


def test_generic_steps_give_the_same_run_on_ray_as_locally(ray_cluster, ray_pm, tmp_path):
    source = data(sample_table(60), tmp_path)
    local = run(generic_spec(LOCAL, source), tmp_path / "local", None, ray_pm)
    on_ray = run(generic_spec(RAY, source), tmp_path / "ray", None, ray_pm)

    assert outcome(on_ray) == outcome(local)
    assert sum(outcome(on_ray)["rows"].values()) > 0
    assert on_ray["executor"] == "ray"
    assert local["executor_where"] == "local"
    assert on_ray["executor_where"] == "ray, a local Ray cluster of this run on loopback " \
        "(this machine's CPUs)"
    assert [s["shards"] for s in on_ray["steps"]] == [s["shards"] for s in local["steps"]]
    # Same store directories (fingerprints), shard files, markers, manifest and views.
    assert layout(tmp_path / "ray" / "run") == layout(tmp_path / "local" / "run")


@settings(max_examples=5)  # each example is a local run and a Ray run
@given(table=cst.tables(max_rows=30), shard_size=st.sampled_from([1, 4, 1000]))
def test_ray_and_local_agree_on_generated_tables(ray_cluster, ray_pm, tmp_path, table, shard_size):
    work = tmp_path / uuid.uuid4().hex
    source = data(table.drop("uid"), work)  # the source derives uids, as it does for real data
    local = run(generic_spec(LOCAL, source, shard_size), work / "local", None, ray_pm)
    on_ray = run(generic_spec(RAY, source, shard_size), work / "ray", None, ray_pm)
    assert outcome(on_ray) == outcome(local)


def test_switching_executor_reuses_the_cache(ray_cluster, ray_pm, workdir):
    source = data(sample_table(30), workdir)
    run(generic_spec(LOCAL, source), workdir, None, ray_pm)
    again = run(generic_spec(RAY, source), workdir, None, ray_pm)
    assert all(step["cached"] for step in again["steps"])


def test_model_step_sets_up_once_per_actor_not_per_shard(ray_cluster, ray_pm, workdir):
    log = workdir / "log"
    spec = {
        "source": {"path": "data.parquet"},
        "steps": [{"step": "count_setups", "params": {"log_dir": str(log)}}],
        "run": {"shard_size": 5, "executor": {"name": "ray", "params": {"actors": 2}}},
    }
    manifest = run(spec, workdir, sample_table(40), ray_pm)

    setups = [p.name.split("-") for p in log.glob("setup-*")]
    shards = [p.name.split("-") for p in log.glob("shard-*")]
    assert sorted(int(index) for _, index, _ in shards) == list(range(8))
    assert len(setups) == 2, "one setup per actor"
    assert {pid for _, _, pid in shards} <= {pid for _, pid, _ in setups}, "shards ran where the model was loaded"
    assert manifest["steps"][1]["rows_out"] == 40


def test_shards_slower_than_the_no_cpu_deadline_run_on_while_the_cluster_has_cpus(ray_cluster, ray_pm, workdir,
                                                                                  monkeypatch):
    """The deadline bounds only a wait on a cluster without CPUs: starting two actors and loading
    their models takes longer than it here, and the run finishes."""
    monkeypatch.setenv("CURATE_RAY_NO_CPU_DEADLINE", "0.05")
    spec = {
        "source": {"path": "data.parquet"},
        "steps": [{"step": "count_setups", "params": {"log_dir": str(workdir / "log")}}],
        "run": {"shard_size": 5, "executor": {"name": "ray", "params": {"actors": 2}}},
    }
    manifest = run(spec, workdir, sample_table(20), ray_pm)
    assert manifest["status"] == "complete" and manifest["steps"][1]["rows_out"] == 20


def test_model_step_without_gpus_in_the_cluster_is_a_clear_error(ray_cluster, ray_pm, workdir):
    spec = {
        "source": {"path": "data.parquet"},
        "steps": [{"step": "count_setups", "params": {"log_dir": str(workdir / "log")}}],
        "run": {"executor": {"name": "ray", "params": {"num_gpus_per_actor": 1}}},
    }
    with pytest.raises(CurateError, match="each actor needs 1 GPU .* the Ray cluster has 0"):
        run(spec, workdir, sample_table(10), ray_pm)
    assert not (workdir / "log").exists(), "no actor was started"


def test_gpus_the_cluster_lacks_are_said_before_any_step_runs(ray_cluster, ray_pm, workdir):
    """It was said when the model step started, after the steps before it had run (Ray probe)."""
    spec = {
        "source": {"path": "data.parquet"},
        "steps": [{"step": "filter", "params": {"where": "true"}},
                  {"step": "count_setups", "params": {"log_dir": str(workdir / "log")}}],
        "run": {"executor": {"name": "ray", "params": {"num_gpus_per_actor": 1}}},
    }
    with pytest.raises(CurateError, match="each actor needs 1 GPU .* the Ray cluster has 0"):
        run(spec, workdir, sample_table(10), ray_pm)
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    assert not [step for step in manifest["steps"] if step and step.get("rows_out")], "no step ran"


def test_a_step_that_raises_fails_the_run_naming_step_and_shard(ray_cluster, ray_pm, workdir):
    spec = {
        "source": {"path": "data.parquet"},
        "steps": [{"step": "broken", "params": {"shard": 2}}],
        "run": {"shard_size": 5, "executor": RAY},
    }
    with pytest.raises(StepError) as caught:
        run(spec, workdir, sample_table(30), ray_pm)
    assert (caught.value.step_label, caught.value.shard) == ("broken", 2)
    assert "ValueError: cannot parse alt_text" in str(caught.value)


def test_a_model_that_fails_to_load_fails_the_run_once(ray_cluster, ray_pm, workdir):
    spec = {
        "source": {"path": "data.parquet"},
        "steps": [{"step": "failing_setup"}],
        "run": {"shard_size": 5, "executor": RAY},
    }
    with pytest.raises(StepError, match="setup\\(\\) failed: RuntimeError: no such checkpoint"):
        run(spec, workdir, sample_table(30), ray_pm)


def test_map_shards_reports_each_shard_as_it_finishes_and_skips_finished_ones(ray_cluster, tmp_path):
    """The executor on its own: ``on_done`` once per shard; a second call (a resumed run) reads the
    markers, reports every shard again and starts no actor, so no model is loaded for nothing."""
    from curate_ray.executor import RayExecutor, RayParams

    from curate.shards import ShardTask, ShardWriter, iter_shard_files
    from curate.step import StepContext
    from tests.ray.steps import CountSetups

    table = sample_table(23).with_row_index("uid").with_columns(pl.col("uid").cast(pl.Utf8))
    writer = ShardWriter(None, tmp_path / "input", 5, None)
    writer.add(table)
    writer.close()
    tasks = [ShardTask(i, path, tmp_path / "step") for i, path in enumerate(iter_shard_files(tmp_path / "input"))]
    log = tmp_path / "log"
    step = CountSetups(CountSetups.Params(log_dir=str(log)))
    ctx = StepContext(run_dir=tmp_path, label=step.label, seed=0, artifacts=tmp_path / "step" / "artifacts",
                      progress=lambda rows: None)
    executor = RayExecutor(RayParams(actors=2))

    done: list[int] = []
    with executor.session():
        first = executor.map_shards(step, tasks, ctx, dict(table.schema), on_done=lambda s: done.append(s.index))
        again: list[int] = []
        second = executor.map_shards(step, tasks, ctx, dict(table.schema), on_done=lambda s: again.append(s.index))

    assert sorted(done) == sorted(again) == list(range(5))
    assert [s.index for s in first] == [s.index for s in second] == list(range(5)), "results in task order"
    assert sum(s.rows_out for s in first) == 23 and first == second
    assert len(list(log.glob("setup-*"))) == 2, "the second call started no actor"
    assert ctx.progress is not None, "the driver's progress callback is given back"


class IntraOpThreads:
    """An actor of one CPU, as a model step's are."""

    def threads(self) -> int:
        import torch

        return torch.get_num_threads()


def test_ray_tasks_and_actors_compute_with_one_thread_as_the_readme_says(ray_cluster):
    """Why a model's floats can differ in the last bit from a local run, which uses every core
    (README, "Floats from models"): Ray runs each task and actor of one CPU with one intra-op
    thread. Should Ray change that, the README's explanation must change with it."""
    pytest.importorskip("torch")
    import ray

    def threads() -> int:
        import torch

        return torch.get_num_threads()

    assert ray.get(ray.remote(threads).options(num_cpus=1).remote()) == 1
    actor = ray.remote(IntraOpThreads).options(num_cpus=1).remote()
    try:
        assert ray.get(actor.threads.remote()) == 1
    finally:
        ray.kill(actor)


def test_inspect_says_which_executor_and_cluster_the_run_used(ray_cluster, ray_pm, workdir, curate_cli):
    spec = {"source": {"path": "data.parquet"}, "steps": [{"step": "normalize_text"}],
            "run": {"shard_size": 5, "executor": {"name": "ray", "params": {"num_cpus": 2}}}}
    manifest = run_spec(spec, workdir, tables={"data.parquet": sample_table(10)}, pm=ray_pm)
    result = curate_cli("inspect", manifest["run_dir"])
    assert result.code == 0, result
    assert "executor: ray, a local Ray cluster of this run on loopback (2 CPUs)\n" in result.stdout
