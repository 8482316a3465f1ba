"""Assertions every row-dropping step must satisfy, shared by the step tests."""

from __future__ import annotations

import polars as pl

from curate.schema import DROP_REASON
from curate.testing import StepResult


def uids(frame: pl.DataFrame) -> list[str]:
    return frame["uid"].to_list() if frame.height else []


def assert_nothing_lost(table: pl.DataFrame, result: StepResult) -> None:
    """Kept ⊆ input, kept + dropped = input exactly once each, input order kept, reasons given."""
    before = uids(table)
    kept = uids(result.kept)
    dropped = uids(result.dropped)
    assert result.kept.height <= table.height, "a filter added rows"
    assert set(kept) <= set(before), "kept uids that were not in the input"
    assert sorted(kept + dropped) == sorted(before), "rows were lost or duplicated"
    position = {uid: i for i, uid in enumerate(before)}
    assert [position[u] for u in kept] == sorted(position[u] for u in kept), "kept rows were reordered"
    if result.dropped.height:
        assert result.dropped[DROP_REASON].null_count() == 0, "a dropped row has no reason"


def rows_by_uid(frame: pl.DataFrame) -> dict[str, dict]:
    return {row["uid"]: row for row in frame.iter_rows(named=True)}
