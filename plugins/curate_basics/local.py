"""The local executor: shards run in this process, on threads, or in a pool of worker processes."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from concurrent.futures import Executor as Pool
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
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


def available_cores() -> int:
    """Cores this process may run on (a taskset or container limit counts), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class LocalParams(Params):
    workers: int | None = Field(
        None, ge=1, le=256, json_schema_extra={"fingerprint": False},
        description="shards run at once (default: one per core). Steps marked thread_safe (the "
                    "built-in ones) run on threads; others run in-process by default and in "
                    "worker processes when workers is set above 1")


class LocalExecutor(Executor):
    name = "local"
    description = "this machine: in-process, on threads, or in a pool of worker processes"
    Params = LocalParams

    def map_shards(self, step: Step, tasks: list[ShardTask], ctx: StepContext, expected: Schema,
                   on_done: ShardDone) -> list[ShardStats]:
        workers = min(self.params.workers or available_cores(), max(1, len(tasks)))
        if workers == 1 or step.uses_model or (not step.thread_safe and self.params.workers is None):
            return super().map_shards(step, tasks, ctx, expected, on_done)
        progress, ctx.progress = ctx.progress, None  # reported per shard, from this thread
        try:
            if step.thread_safe:
                step.setup(ctx)
                with ThreadPoolExecutor(workers, thread_name_prefix=f"curate-{step.label}") as pool:
                    # Each task gets its own context: run_shard_task sets the shard on it.
                    return self._map(pool, run_shard_task, step, tasks, ctx, expected, on_done,
                                     per_task=lambda: dataclasses.replace(ctx))
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                return self._map(pool, _run_in_worker, step, tasks, ctx, expected, on_done, per_task=lambda: ctx)
        finally:
            ctx.progress = progress

    @staticmethod
    def _map(pool: Pool, function: Any, step: Step, tasks: list[ShardTask], ctx: StepContext,
             expected: Schema, on_done: ShardDone, per_task: Any) -> list[ShardStats]:
        results: dict[int, ShardStats] = {}
        futures = {pool.submit(function, step, task, per_task(), expected): task for task in tasks}
        try:
            for future in as_completed(futures):
                stats = future.result()
                results[stats.index] = stats
                on_done(stats)
        except BaseException:
            # A failed shard stops the step: shards not started yet are not run (finished ones
            # keep their markers, so a resumed run does not redo them).
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        return [results[t.index] for t in tasks]
