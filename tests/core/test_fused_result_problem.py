"""A fused member whose plugin refuses its result (:meth:`Step.result_problem`) fails the run as a
step run alone does: the group ran one pass per shard and skipped the check, so a refused result
(a download whose servers were down) was published complete, and so were the members after it,
computed from its rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate import Step, hookimpl
from curate.runfiles import COMPLETE, RETRY_NEXT
from tests.conftest import sample_table
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)


class Flaky(Step):
    """Keeps every row; refuses its result unless its run retries its failures (the next one does)."""

    name = "flaky"
    thread_safe = True
    tries: list[bool] = []
    shards: list[bool] = []

    def process_shard(self, table, ctx):
        Flaky.shards.append(bool(ctx.extras.get("retry_failed")))
        return table

    def result_problem(self, ctx):
        retry = bool(ctx.extras.get("retry_failed"))
        Flaky.tries.append(retry)
        refused = ("step 'flaky' fetched nothing: the servers were down", "run it again later")
        return None if retry else refused


class FlakyPlugin:
    @hookimpl
    def curate_register_steps(self):
        return [Flaky]


@pytest.mark.parametrize("heads", [False, True], ids=["shard-group", "headed-by-the-source"])
def test_a_fused_member_that_refuses_its_result_fails_the_run_and_nothing_is_complete(
        curate_main, write_spec, workdir, register_plugin, heads):
    register_plugin(FlakyPlugin(), "flaky")
    Flaky.tries, Flaky.shards = [], []
    steps = [{"step": "filter", "params": {"where": "score > 0.1"}}, {"step": "flaky"},
             {"step": "filter", "name": "last", "params": {"where": "score < 0.9"}}]
    write_spec({"name": "s", "source": {"path": "data.parquet"}, "steps": steps,
                "outputs": [{"format": "parquet", "path": "out.parquet"}],
                "run": {"dir": "run", "report": False, "shard_size": 10, "fuse_heads": heads}},
               table=sample_table(40))
    failed = curate_main("run", "spec.yaml", "--quiet")
    assert failed.code == 1 and "step 'flaky' fetched nothing: the servers were down" in failed.stderr
    assert "run it again later" in failed.stderr and "Traceback" not in failed.stderr
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    group = [r for r in manifest["steps"] if "fused" in r]
    assert [r["label"] for r in group] == ["source"] * heads + ["filter", "flaky", "last"]
    assert manifest["status"] == "failed" and not manifest["outputs"]
    assert not any(r["complete"] or (Path(r["path"]) / COMPLETE).exists() for r in group)
    assert not (workdir / "run" / "out.parquet").exists()
    assert (Path(group[-2]["path"]) / RETRY_NEXT).exists()

    done = curate_main("run", "spec.yaml", "--quiet")
    assert done.code == 0, done.stderr
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    assert all(r["complete"] and not r["cached"] for r in manifest["steps"][heads is False:])
    assert Flaky.tries == [False, True]
    assert Flaky.shards == [False] * 4 + [True] * 4  # every shard again, its finished markers reopened
    assert not (Path(group[-2]["path"]) / RETRY_NEXT).exists()
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    assert Flaky.tries == [False, True]  # reused: its result is not asked for again
