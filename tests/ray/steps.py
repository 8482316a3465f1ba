"""Steps that make the Ray executor's promises observable: they count setups, crash a worker once,
or hold shards back until told, leaving files behind that the tests read.

Registered as a plugin (``curate_register_steps`` below) by the tests, and through a small plugin
distribution by the subprocess that runs ``curate run``.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from pathlib import Path

import polars as pl
from pydantic import Field

from curate import Params, Step, StepContext, hookimpl


def _touch(directory: str, name: str) -> None:
    Path(directory).mkdir(parents=True, exist_ok=True)
    (Path(directory) / name).write_text("")


class CountSetups(Step):
    """A model step: every setup() leaves a file, every shard names the process that ran it."""

    name = "count_setups"
    uses_model = True

    class Params(Params):
        log_dir: str

    def setup(self, ctx: StepContext) -> None:
        time.sleep(0.2)  # loading a model is slow: the point of doing it once per actor
        _touch(self.params.log_dir, f"setup-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self.loaded = True

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        assert self.loaded, "process_shard() before setup()"
        _touch(self.params.log_dir, f"shard-{ctx.shard}-{os.getpid()}")
        return table


class CrashOnce(Step):
    """Kills its own worker process on one shard, the first time only (a guard file remembers)."""

    name = "crash_once"

    class Params(Params):
        shard: int = Field(..., ge=0)
        guard_dir: str

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        guard = Path(self.params.guard_dir) / f"crashed-{ctx.shard}"
        if ctx.shard == self.params.shard and not guard.exists():
            _touch(self.params.guard_dir, guard.name)
            os._exit(1)  # no exception, no cleanup: as an OOM kill or a segfault looks
        return table


class CrashOnceModel(CrashOnce):
    """The same crash inside an actor of a model step, counting setups as CountSetups does."""

    name = "crash_once_model"
    uses_model = True

    def setup(self, ctx: StepContext) -> None:
        _touch(self.params.guard_dir, f"setup-{os.getpid()}-{uuid.uuid4().hex[:8]}")


class HoldBack(Step):
    """Lets the first ``proceed`` shards through, then holds every later one until ``release``
    exists. Each call appends its shard to ``log`` (under a lock, so the count is exact)."""

    name = "hold_back"

    class Params(Params):
        log: str
        release: str
        proceed: int = Field(..., ge=0)

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        with open(self.params.log, "a+") as log:
            fcntl.flock(log, fcntl.LOCK_EX)
            log.write(f"{ctx.shard}\n")
            log.flush()
            log.seek(0)
            calls = len(log.read().splitlines())
            fcntl.flock(log, fcntl.LOCK_UN)
        while calls > self.params.proceed and not Path(self.params.release).exists():
            time.sleep(0.05)
        return table


class FailingSetup(Step):
    name = "failing_setup"
    uses_model = True

    def setup(self, ctx: StepContext) -> None:
        raise RuntimeError("no such checkpoint: model.safetensors")

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        return table


class Broken(Step):
    """A plugin bug on one shard: the run must fail naming step and shard, without retrying."""

    name = "broken"

    class Params(Params):
        shard: int = 0

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        if ctx.shard == self.params.shard:
            raise ValueError("cannot parse alt_text")
        return table


@hookimpl
def curate_register_steps() -> list[type[Step]]:
    return [CountSetups, CrashOnce, CrashOnceModel, HoldBack, FailingSetup, Broken]
