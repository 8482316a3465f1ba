"""The local executor: shards run in this process, or in a pool of worker processes."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from pydantic import Field

from curate.executor import Executor, ShardDone
from curate.params import Params
from curate.schema import Schema
from curate.shards import ShardStats, ShardTask, run_shard_task
from curate.step import Step, StepContext

_worker_steps: dict[str, Step] = {}


def _run_in_worker(step: Step, task: ShardTask, ctx: StepContext, expected: Schema) -> ShardStats:
    # One setup per worker process and step (a model is loaded once, not once per shard).
    key = f"{step.label}:{id(type(step))}"
    cached = _worker_steps.get(key)
    if cached is None:
        step.setup(ctx)
        _worker_steps[key] = cached = step
    ctx.progress = None
    return run_shard_task(cached, task, ctx, expected)


class LocalParams(Params):
    workers: int = Field(1, ge=1, le=256, description="processes for shard-scope steps (1: in-process)",
                         json_schema_extra={"fingerprint": False})


class LocalExecutor(Executor):
    name = "local"
    description = "this machine: in-process, or a pool of worker processes"
    Params = LocalParams

    def map_shards(self, step: Step, tasks: list[ShardTask], ctx: StepContext, expected: Schema,
                   on_done: ShardDone) -> list[ShardStats]:
        workers = min(self.params.workers, max(1, len(tasks)))
        if workers == 1 or step.uses_model:
            return super().map_shards(step, tasks, ctx, expected, on_done)
        results: dict[int, ShardStats] = {}
        progress, ctx.progress = ctx.progress, None  # callables do not cross process boundaries
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures: dict[Any, ShardTask] = {
                    pool.submit(_run_in_worker, step, task, ctx, expected): task for task in tasks
                }
                for future in as_completed(futures):
                    stats = future.result()
                    results[stats.index] = stats
                    on_done(stats)
        finally:
            ctx.progress = progress
        return [results[t.index] for t in tasks]
