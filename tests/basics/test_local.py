from __future__ import annotations

from pathlib import Path

import pytest

from curate.errors import StepError
from curate.hookspecs import hookimpl
from curate.step import Step
from curate.testing import run_spec
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
