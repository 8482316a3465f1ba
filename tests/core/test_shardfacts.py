"""Counts a shard step stores per shard (curate.shardfacts) reach its summary from worker processes,
where a count kept on the step instance would be lost; a damaged facts file is left out."""

from __future__ import annotations

import os
from pathlib import Path

from curate.hookspecs import hookimpl
from curate.shardfacts import FACTS_DIR, largest, read_shard_facts, summed, write_shard_facts
from curate.step import Step, StepContext
from curate.testing import run_spec
from tests.conftest import sample_table


class CountsRows(Step):
    name = "counts_rows"

    def process_shard(self, table, ctx):
        write_shard_facts(ctx, {"rows": {"all": table.height}, "pid": os.getpid()})
        return table

    def summary(self, ctx):
        facts = read_shard_facts(ctx.artifacts)
        return {**summed(facts, "rows"), "pids": sorted({fact["pid"] for fact in facts})}


class CountingSteps:
    @hookimpl
    def curate_register_steps(self):
        return [CountsRows]


def test_counts_from_worker_processes_add_up_in_the_summary(pm, register_plugin, tmp_path):
    register_plugin(CountingSteps(), "counting_steps")
    spec = {"name": "facts", "source": {"path": "data.parquet"}, "steps": [{"step": "counts_rows"}],
            "run": {"shard_size": 10, "report": False,
                    "executor": {"name": "local", "params": {"workers": 2}}}}
    manifest = run_spec(spec, tmp_path, tables={"data.parquet": sample_table(25)}, pm=pm)
    (record,) = [r for r in manifest["steps"] if r["label"] == "counts_rows"]
    assert record["summary"]["all"] == 25  # 10 + 10 + 5
    assert os.getpid() not in record["summary"]["pids"]  # counted elsewhere
    assert len(read_shard_facts(Path(record["path"]) / "artifacts")) == 3


def test_a_damaged_facts_file_is_left_out(tmp_path):
    ctx = StepContext(run_dir=tmp_path, label="s", seed=0, artifacts=tmp_path / "artifacts", shard=3)
    write_shard_facts(ctx, {"n": {"a": 2, "b": True, "c": "x"}})
    folder = tmp_path / "artifacts" / FACTS_DIR
    (folder / "shard-00000.json").write_text("{not json")
    (folder / "shard-00001.json").write_text("[1, 2]")
    os.mkfifo(folder / "shard-00002.json")  # never waited on
    assert summed(read_shard_facts(ctx.artifacts), "n") == {"a": 2}


def test_the_largest_limit_is_a_whole_number_some_shard_stored():
    facts = [{"context": 32}, {"context": 77}, {"context": True}, {"context": "512"}, {}]
    assert largest(facts, "context") == 77
    assert largest([{"context": None}, {}], "context") is None
