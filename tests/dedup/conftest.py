"""Fixtures for the dedup steps: a plugin manager with curate_dedup, and a runner that puts a
synthetic embedding store upstream of the step, as clip_score would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import curate_dedup
import pytest
from curate_dedup.testing import Planted

from curate.plugins import PluginManager
from curate.testing import StepResult, run_step


@pytest.fixture
def dedup_pm(pm: PluginManager) -> PluginManager:
    pm.register(curate_dedup, name="dedup", distribution="curate", version=curate_dedup.__version__)
    return pm


@pytest.fixture
def run_on(dedup_pm: PluginManager, tmp_path: Path) -> Callable[..., StepResult]:
    """``run_on(step, planted, params)``: run ``step`` on ``planted.table`` with its vectors
    stored by an upstream step labelled ``clip``."""
    counter = iter(range(10**9))

    def run(step: str, data: Planted, params: dict[str, Any] | None = None, *, shard_size: int = 1000,
            missing: set[str] | None = None, table: Any = None) -> StepResult:
        where = tmp_path / f"run{next(counter)}"
        upstream = data.write_store(where / "clip", missing=missing)
        return run_step(step, data.table if table is None else table, params, pm=dedup_pm,
                        shard_size=shard_size, workdir=where, upstream={"clip": upstream})

    return run
