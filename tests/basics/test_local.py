from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.errors import StepError
from curate.hookspecs import hookimpl
from curate.step import Step
from curate.testing import run_spec
from curate.testing import strategies as cst
from tests.conftest import sample_table


def step_files(manifest: dict) -> dict[str, bytes]:
    """Every data and dropped shard of every step, by 'label/kind/name'."""
    out = {}
    for record in manifest["steps"]:
        root = Path(record["path"])
        for kind in ("data", "dropped"):
            for path in sorted((root / kind).glob("shard-*.parquet")):
                out[f"{record['label']}/{kind}/{path.name}"] = path.read_bytes()
    return out


def test_worker_processes_give_byte_identical_output_and_the_same_fingerprints(pm, workdir):
    # One shard-scope step: every step starts its own pool of spawned workers, which is slow.
    steps = [{"step": "filter", "params": {"where": "score > 0.2 AND alt_text <> ''"}}]
    sample_table(120).write_parquet(workdir / "data.parquet")  # one file: the same source fingerprint

    def run(workers: int, where: str) -> dict:
        spec = {"source": {"path": str(workdir / "data.parquet")}, "steps": steps,
                "run": {"shard_size": 25, "executor": {"name": "local", "params": {"workers": workers}}}}
        return run_spec(spec, workdir / where, pm=pm)

    serial, parallel = run(1, "serial"), run(2, "parallel")
    assert [r["fingerprint"] for r in serial["steps"]][1:] == [r["fingerprint"] for r in parallel["steps"]][1:]
    assert step_files(serial) == step_files(parallel)
    assert [r["rows_out"] for r in serial["steps"]] == [r["rows_out"] for r in parallel["steps"]]


class Exploding(Step):
    name = "explode_on_shard_2"

    def process_shard(self, table, ctx):
        if ctx.shard == 2:
            raise ValueError("boom")
        return table


class ExplodingPlugin:
    @hookimpl
    def curate_register_steps(self):
        return [Exploding]


def test_a_failing_shard_names_the_step_and_shard_and_keeps_finished_shards(pm, register_plugin, workdir):
    register_plugin(ExplodingPlugin(), "exploding")
    spec = {"source": {"path": "data.parquet"}, "steps": [{"step": "explode_on_shard_2", "name": "bad"}],
            "run": {"shard_size": 10}}
    with pytest.raises(StepError, match=r"step 'bad', shard 2 failed: ValueError: boom") as caught:
        run_spec(spec, workdir, tables={"data.parquet": sample_table(50)}, pm=pm)
    assert caught.value.shard == 2
    markers = sorted(p.name for p in (workdir / "run" / "store").glob("*/shards/*.json"))
    assert markers == ["00000.json", "00001.json"]  # finished shards are kept for a resume


class Recording(Step):
    """Not thread_safe: records where each shard ran (a side channel, not the output)."""

    name = "record_thread"
    seen: list[str] = []

    def process_shard(self, table, ctx):
        import threading

        Recording.seen.append(threading.current_thread().name)
        return table


class RecordingPlugin:
    @hookimpl
    def curate_register_steps(self):
        return [Recording]


def test_by_default_every_core_runs_thread_safe_steps_on_threads_with_the_same_bytes(pm, register_plugin,
                                                                                      workdir, monkeypatch):
    import threading

    import curate_basics.local

    register_plugin(RecordingPlugin(), "recording")
    monkeypatch.setattr(curate_basics.local, "available_cores", lambda: 3)
    threads: set[str] = set()
    real = curate_basics.local.run_shard_task

    def spy(step, task, ctx, expected):
        threads.add(threading.current_thread().name)
        return real(step, task, ctx, expected)

    monkeypatch.setattr(curate_basics.local, "run_shard_task", spy)
    steps = [{"step": "filter", "params": {"where": "score > 0.2"}},
             {"step": "normalize_text", "params": {"min_length": 2}},
             {"step": "record_thread"},
             {"step": "sample", "params": {"fraction": 0.5}}]
    sample_table(200).write_parquet(workdir / "data.parquet")

    def run(executor: dict, where: str) -> dict:
        spec = {"source": {"path": str(workdir / "data.parquet")}, "steps": steps,
                "run": {"shard_size": 20, "executor": executor}}
        return run_spec(spec, workdir / where, pm=pm)

    serial = run({"name": "local", "params": {"workers": 1}}, "serial")
    threads.clear()
    Recording.seen.clear()
    default = run({"name": "local"}, "default")
    assert step_files(serial) == step_files(default)
    assert [r["dropped"] for r in serial["steps"]] == [r["dropped"] for r in default["steps"]]
    assert any(name.startswith("curate-") for name in threads)  # the built-in steps ran on the pool
    # a step not marked thread_safe runs in-process, in order, unless workers is set
    assert set(Recording.seen) == {threading.current_thread().name}


class ExplodingOnThreads(Exploding):
    name = "explode_on_shard_2_threads"
    thread_safe = True


class ExplodingOnThreadsPlugin:
    @hookimpl
    def curate_register_steps(self):
        return [ExplodingOnThreads]


def test_a_failing_shard_on_a_thread_names_the_step_and_shard(pm, register_plugin, workdir):
    register_plugin(ExplodingOnThreadsPlugin(), "exploding_threads")
    spec = {"source": {"path": "data.parquet"}, "steps": [{"step": "explode_on_shard_2_threads", "name": "bad"}],
            "run": {"shard_size": 10, "executor": {"name": "local", "params": {"workers": 2}}}}
    with pytest.raises(StepError, match=r"step 'bad', shard 2 failed: ValueError: boom") as caught:
        run_spec(spec, workdir, tables={"data.parquet": sample_table(50)}, pm=pm)
    assert caught.value.shard == 2
    markers = {p.name for p in (workdir / "run" / "store").glob("*/shards/*.json")}
    assert "00002.json" not in markers and "00000.json" in markers


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=cst.tables(min_rows=0, max_rows=60), shard_size=st.integers(1, 25), threads=st.integers(2, 4))
def test_threads_give_the_bytes_of_one_process_on_random_tables(pm, tmp_path_factory, table, shard_size, threads):
    workdir = tmp_path_factory.mktemp("threads")
    table.drop("uid").write_parquet(workdir / "data.parquet")
    steps = [{"step": "filter", "params": {"where": "length(alt_text) > 3"}},
             {"step": "normalize_text", "params": {"min_length": 2, "max_length": 30}},
             {"step": "sql", "params": {"query": "SELECT * FROM input WHERE url LIKE '%a%'", "per_shard": True}},
             {"step": "sample", "params": {"fraction": 0.6}},
             {"step": "select", "params": {"columns": ["alt_text"]}}]

    def run(workers: int, where: str) -> dict:
        spec = {"source": {"path": str(workdir / "data.parquet")}, "steps": steps,
                "run": {"shard_size": shard_size, "executor": {"name": "local", "params": {"workers": workers}}}}
        return run_spec(spec, workdir / where, pm=pm)

    serial, parallel = run(1, "serial"), run(threads, "threads")
    assert step_files(serial) == step_files(parallel)
    assert [r["dropped"] for r in serial["steps"]] == [r["dropped"] for r in parallel["steps"]]
