"""Shared fixtures: small generated worlds, made once per test session (generation is the slow part)."""

from __future__ import annotations

from pathlib import Path

import pytest
from curate_world.generate import World, generate_world


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """300 rows with every fault kind and noise type present; shared, so tests must not modify it."""
    return generate_world(tmp_path_factory.mktemp("worlds") / "small", n=300, seed=7, fault_rate=0.5)


@pytest.fixture(scope="session")
def large_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """2000 rows: enough for rate checks within binomial tolerance."""
    return generate_world(
        tmp_path_factory.mktemp("worlds") / "large", n=2000, seed=11, dup_fraction=0.15, eval_n=50
    )


def read(world: World, name: str = "world.parquet"):  # type: ignore[no-untyped-def]
    import polars as pl

    return pl.read_parquet(Path(world.dir) / name)
