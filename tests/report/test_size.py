"""A report of a big run stays small and quick: every read is a bounded sample."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from curate_report.page import write_report

from tests.report.checks import assert_self_contained, assert_well_formed

MAX_BYTES = 3_000_000
MAX_CPU_SECONDS = 8.0  # about 2 s measured; CPU, not wall time: the machine is shared


@pytest.mark.slow
def test_a_100k_row_report_is_under_3_mb_and_quick(big_run: Path, tmp_path: Path, report_pm):
    started, cpu = time.perf_counter(), time.process_time()
    page = write_report(big_run, tmp_path / "report.html", pm=report_pm)
    cpu_seconds, wall_seconds = time.process_time() - cpu, time.perf_counter() - started
    size = page.stat().st_size
    print(f"100k-row report: {size / 1e6:.2f} MB, {cpu_seconds:.2f} s CPU, {wall_seconds:.2f} s wall")
    assert size < MAX_BYTES
    assert cpu_seconds < MAX_CPU_SECONDS
    text = page.read_text()
    assert text.count("data:image/jpeg") <= 48
    assert_well_formed(text)
    assert_self_contained(text)
