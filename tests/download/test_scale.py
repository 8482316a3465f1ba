"""The acceptance run at full size: 5,000 URLs, 20 % of them faulty."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest
from curate_world.generate import generate_world

from tests.download.conftest import counting_server, run_download, url_table
from tests.download.test_download import ACCEPTANCE_PARAMS, check_against_ground_truth

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_five_thousand_urls(tmp_path: Path) -> None:
    world = generate_world(tmp_path / "world", n=5000, seed=0, fault_rate=0.2)
    # Two parts of 2,500, one per process: a part lasts as long as its slowest row (a "slow" URL's
    # timeout, its retry and backoff), so five parts of 1,000 waited that out three times in turn.
    params = {**ACCEPTANCE_PARAMS, "samples_per_shard": 2500, "processes": 2}
    with counting_server(world) as server:
        started = time.perf_counter()
        manifest, rows = run_download(tmp_path / "run", url_table(world, server.base_url), params)
        seconds = time.perf_counter() - started
        requests = sum(server.counts.values())
    record = manifest["steps"][1]
    check_against_ground_truth(world, rows, record, manifest["store_dir"])
    by_status = dict(rows.group_by("status").len().sort("status").iter_rows())
    faults = dict(rows.group_by("gt_fault").len().sort("gt_fault").iter_rows())
    print(f"\n5000 URLs: {seconds:.1f} s end to end, step {record['seconds']} s, {requests} requests; "
          f"status {by_status}; faults {faults}")
    assert rows.filter(pl.col("status") == "success").height > 3900
