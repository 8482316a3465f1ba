"""The matching benchmark's inputs: entries are distinct, non-blank, stable, and include phrases."""

from __future__ import annotations

from benchmarks.bench_metadata_match import synthetic_entries


def test_synthetic_entries_are_distinct_stable_and_mixed():
    entries = synthetic_entries(20_000)
    assert len(entries) == len(set(entries)) == 20_000
    assert all(entry.strip() == entry and entry for entry in entries)
    assert entries == synthetic_entries(20_000)
    assert any(" " in entry for entry in entries)
