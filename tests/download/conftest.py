"""Fixtures for the download step: a small faulty world, its loopback server, and a runner.

A download run costs seconds of img2dataset start-up, so tests share runs where they can: the
world is generated once per session, and the main run once per module.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from curate_world.generate import World, generate_world
from curate_world.server import WorldServer, serve_world

from curate.testing.runner import read_step_output, run_spec

# "slow" URLs stall this long; download timeouts in these tests are far below it, so a slow URL
# always times out, and closing the server wakes whatever still sleeps.
SLOW_SECONDS = 30.0
TIMEOUT = 3.0
# Runs in which no URL stalls (the clean world, the hostile host's quick routes) wait out no
# timeout, so theirs is long: a healthy URL on a loaded machine (seconds for img2dataset's threads
# to get the CPU) never reaches it, and only a bug that stalls would wait it out.
NO_STALL_TIMEOUT = 60.0
HEALTHY = ("none", "redirect")  # the faults whose URL leads to a valid, allowed, small image
WORLD_ROWS = 300


class RequestCounter(logging.Handler):
    """Counts the world server's requests by path (the server logs each one when verbose)."""

    pattern = re.compile(r'"(?:GET|HEAD) (\S+) HTTP')

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: Counter[str] = Counter()
        self.lock_counts = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        match = self.pattern.search(record.getMessage())
        if match:
            with self.lock_counts:
                self.counts[match.group(1)] += 1


class CountingServer:
    def __init__(self, server: WorldServer, counter: RequestCounter):
        self.server = server
        self.counter = counter
        self.base_url = server.base_url

    @property
    def counts(self) -> Counter[str]:
        return self.counter.counts


@pytest.fixture(scope="session")
def faulty_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Every fault kind well represented: half the URLs are faulty."""
    return generate_world(tmp_path_factory.mktemp("download-worlds") / "faulty", n=WORLD_ROWS, seed=21,
                          fault_rate=0.5)


@pytest.fixture(scope="session")
def clean_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return generate_world(tmp_path_factory.mktemp("download-worlds") / "clean", n=120, seed=22, fault_rate=0.0)


@pytest.fixture(scope="session")
def stalling_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """30 % of URLs are "slow": every part of 20 rows has some, so each part lasts a timeout."""
    return generate_world(tmp_path_factory.mktemp("download-worlds") / "stalling", n=120, seed=23,
                          fault_rate=0.3, fault_weights={"slow": 1.0})


@contextmanager
def counting_server(world: World) -> Iterator[CountingServer]:
    logger = logging.getLogger("curate_world.server")
    counter = RequestCounter()
    previous = logger.level
    logger.addHandler(counter)
    logger.setLevel(logging.INFO)
    try:
        with serve_world(world.dir, slow_seconds=SLOW_SECONDS, verbose=True) as server:
            yield CountingServer(server, counter)
    finally:
        logger.removeHandler(counter)
        logger.setLevel(previous)


def url_table(world: World, base_url: str, rows: int | None = None) -> pl.DataFrame:
    """The world's rows as a source table: url, alt_text and the ground truth fault."""
    table = pl.read_parquet(world.world_table, columns=["url_path", "alt_text", "fault", "image_path"])
    if rows is not None:
        table = table.head(rows)
    return table.select(
        (pl.lit(base_url) + pl.col("url_path")).alias("url"),
        pl.col("alt_text"),
        pl.col("fault").alias("gt_fault"),
        pl.col("image_path").alias("gt_image_path"),
    )


def download_spec(params: dict[str, Any], *, shard_size: int = 100_000, name: str = "download") -> dict[str, Any]:
    return {
        "name": name,
        "source": {"path": "data.parquet"},
        "steps": [{"step": "download", "params": params}],
        "run": {"dir": "run", "shard_size": shard_size},
    }


def run_download(workdir: Path, table: pl.DataFrame, params: dict[str, Any], *,
                 shard_size: int = 100_000) -> tuple[dict[str, Any], pl.DataFrame]:
    """Run a spec with one download step; returns the manifest and the step's kept rows."""
    manifest = run_spec(download_spec(params, shard_size=shard_size), workdir, tables={"data.parquet": table})
    return manifest, read_step_output(manifest, "download")


def read_dropped(manifest: dict[str, Any], label: str = "download") -> pl.DataFrame:
    record = next(r for r in manifest["steps"] if r["label"] == label)
    files = sorted((Path(record["path"]) / "dropped").glob("shard-*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
