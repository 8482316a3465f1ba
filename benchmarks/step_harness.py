"""A shard-scope step run the way the engine runs it, for benchmarks that time a step against
the raw library: the input table written once as shards, the step set up once (model loaded),
then ``run()`` as often as the benchmark repeats, each into a fresh output directory."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl


class StepHarness:
    def __init__(self, step: Any, table: pl.DataFrame, work: Path, label: str, shard_size: int = 1000,
                 setup: bool = True):
        """``setup=False``: the step is already set up (a benchmark that shares a loaded model
        between variants of a step)."""
        from curate.shards import ShardWriter, iter_shard_files
        from curate.step import StepContext

        inputs = work / "input"
        shutil.rmtree(inputs, ignore_errors=True)
        writer = ShardWriter(None, inputs, shard_size, None)
        writer.add(table)
        writer.close()
        self.files = iter_shard_files(inputs)
        self.step = step
        self.expected = step.output_schema(dict(table.schema))
        self.out = work / "output"
        self.ctx = StepContext(run_dir=work, label=label, seed=0, artifacts=self.out / "artifacts",
                               extras={"store_dir": None})
        if setup:
            step.setup(self.ctx)

    def run(self) -> Path:
        """The step over every input shard; returns its output directory (shards, artifacts)."""
        from curate.shards import ShardTask, run_shard_task

        shutil.rmtree(self.out, ignore_errors=True)
        self.ctx.artifacts.mkdir(parents=True)
        for index, path in enumerate(self.files):
            run_shard_task(self.step, ShardTask(index, path, self.out), self.ctx, self.expected)
        return self.out
