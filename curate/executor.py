"""Executors decide where shards run. Steps never know which one runs them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

from curate.params import Params
from curate.schema import Schema
from curate.shards import ShardStats, ShardTask, run_shard_task
from curate.step import Step, StepContext

ShardDone = Callable[[ShardStats], None]


class Executor:
    """Base class of executors. The default runs everything in this process, in order."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None

    class Params(Params):
        pass

    def __init__(self, params: Params | None = None):
        self.params = params if params is not None else type(self).Params()
        # The run's plugins, ``(name, module, distribution)`` each, set where the spec is resolved:
        # an executor whose workers import them on other machines can check they run the same code.
        self.plugins: tuple[tuple[str, str, str | None], ...] = ()

    def untrusted_problems(self) -> list[tuple[str, str, str | None]]:
        """``(param, problem, hint)`` for each of its params that a spec from someone else
        (``run.untrusted`` / ``--untrusted``) may not set: validation reports them, nothing runs.
        An executor that sends the run's data or code somewhere (a cluster's address) refuses
        that here, as the plan refuses such a spec's absolute output paths."""
        return []

    def where(self) -> str:
        """Where the run's shards go, in one line: `curate plan` prints it, and the manifest keeps
        it for `curate inspect`. An executor that sends them elsewhere (a cluster) names where."""
        return self.name

    @contextmanager
    def session(self) -> Iterator[None]:
        """Held open for the run: connect to a cluster, start worker pools…"""
        yield

    def map_shards(
        self,
        step: Step,
        tasks: list[ShardTask],
        ctx: StepContext,
        expected: Schema,
        on_done: ShardDone,
    ) -> list[ShardStats]:
        """Run ``step`` over every task; call ``on_done`` as each shard finishes."""
        step.setup(ctx)
        results = []
        ctx.shard = None
        for task in tasks:
            stats = run_shard_task(step, task, ctx, expected)
            on_done(stats)
            results.append(stats)
        return results
