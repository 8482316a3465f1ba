"""metadata_balance: MetaCLIP's keep probability, exactly, whatever the shard layout."""

from __future__ import annotations

import math

import polars as pl
from curate_metadata.balance import NO_ENTRIES, SALT
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.hashing import uniform
from curate.testing import run_step
from tests.invariants import assert_nothing_lost, uids


def table_of(entry_lists, offset=0):
    return pl.DataFrame({
        "uid": [f"{offset + i:016x}" for i in range(len(entry_lists))],
        "metadata_entries": pl.Series(entry_lists, dtype=pl.List(pl.Int64)),
    })


entry_lists = st.lists(st.lists(st.integers(0, 6), max_size=4), max_size=60)


def reference_keep(table, t, seed):
    """MetaCLIP's rule with the same draws: any entry e selects the row when u(uid, e) < t / count(e)."""
    counts = {}
    for ids in table["metadata_entries"]:
        for e in set(ids):
            counts[e] = counts.get(e, 0) + 1
    kept = []
    for uid, ids in zip(table["uid"], table["metadata_entries"], strict=True):
        draws = uniform(pl.Series([f"{uid}:{e}" for e in sorted(set(ids))], dtype=pl.Utf8), seed, salt=SALT)
        if any(u < min(1.0, t / counts[e]) for u, e in zip(draws, sorted(set(ids)), strict=True)):
            kept.append(uid)
    return kept


@settings(max_examples=15)
@given(lists=entry_lists, t=st.integers(1, 12), seed=st.integers(0, 2**31))
def test_a_row_is_kept_when_any_of_its_entries_selects_it(metadata_pm, tmp_path, lists, t, seed):
    table = table_of(lists)
    result = run_step("metadata_balance", table, {"t": t}, seed=seed, pm=metadata_pm, workdir=tmp_path, shard_size=9)
    assert_nothing_lost(table, result)
    assert uids(result.kept) == reference_keep(table, t, seed)
    empty = [uid for uid, ids in zip(table["uid"], lists, strict=True) if not ids]
    assert sorted(result.dropped.filter(pl.col("_drop_reason") == NO_ENTRIES)["uid"]) == sorted(empty)


@settings(max_examples=15)
@given(lists=entry_lists, t=st.integers(1, 30))
def test_rows_of_entries_under_t_are_all_kept(metadata_pm, tmp_path, lists, t):
    table = table_of(lists)
    counts = table.select(pl.col("metadata_entries").list.unique().explode().drop_nulls()).to_series().value_counts()
    tail = set(counts.filter(pl.col("count") <= t)["metadata_entries"])
    result = run_step("metadata_balance", table, {"t": t}, pm=metadata_pm, workdir=tmp_path)
    kept = set(uids(result.kept))
    assert all(uid in kept for uid, ids in zip(table["uid"], lists, strict=True) if tail & set(ids))


@settings(max_examples=6)
@given(t=st.integers(20, 400), head=st.integers(1_000, 3_000), seed=st.integers(0, 2**31),
       offset=st.integers(0, 10**9))
def test_the_kept_share_is_the_specified_probability(metadata_pm, tmp_path, t, head, seed, offset):
    """Entry 0 on every row, entry 1 on every third, entry 2 on 5 rows (under t): a row with
    entries E is kept with 1 - prod(1 - min(1, t / count(e))); checked per kind of row, 5 sigma."""
    lists = [[0] + ([1] if i % 3 == 0 else []) + ([2] if i < 5 else []) for i in range(head)]
    table = table_of(lists, offset)
    result = run_step("metadata_balance", table, {"t": t}, seed=seed, pm=metadata_pm, workdir=tmp_path)
    kept = set(uids(result.kept))
    p0, p1 = min(1, t / head), min(1, t / len(range(0, head, 3)))
    groups = {"only 0": (lambda i: i % 3 != 0 and i >= 5, p0),
              "0 and 1": (lambda i: i % 3 == 0 and i >= 5, 1 - (1 - p0) * (1 - p1))}
    for name, (member, p) in groups.items():
        rows = [f"{offset + i:016x}" for i in range(head) if member(i)]
        share = sum(uid in kept for uid in rows)
        assert abs(share - p * len(rows)) <= 5 * math.sqrt(len(rows) * p * (1 - p)) + 1, name
    assert all(f"{offset + i:016x}" in kept for i in range(5))  # entry 2 is under t


@settings(max_examples=8)
@given(lists=entry_lists, t=st.integers(1, 10), seed=st.integers(0, 1000))
def test_the_result_does_not_depend_on_the_shard_size(metadata_pm, tmp_path, lists, t, seed):
    table = table_of(lists)
    picked = [uids(run_step("metadata_balance", table, {"t": t}, seed=seed, shard_size=size,
                            pm=metadata_pm, workdir=tmp_path).kept) for size in (7, 1000)]
    assert picked[0] == picked[1]


def test_facts_say_head_and_tail_before_and_after(metadata_pm):
    lists = [[0]] * 100 + [[1]] * 5 + [[0, 1]] * 2
    result = run_step("metadata_balance", table_of(lists), {"t": 10}, pm=metadata_pm)
    facts = result.summary
    assert (facts["entries_matched"], facts["head_entries"], facts["tail_entries"]) == (2, 1, 1)
    assert facts["matches_before"] == 102 + 7 and facts["max_count_before"] == 102
    assert facts["head_share_before"] == round(102 / 109, 4)
    assert facts["head_share_after"] < 0.8 and facts["rows_kept"] == result.kept.height
    assert facts["top_entries"][0]["entry_id"] == 0 and facts["top_entries"][1]["kept"] == 7


def test_an_empty_table_balances_to_nothing(metadata_pm):
    result = run_step("metadata_balance", table_of([]), {"t": 3}, pm=metadata_pm)
    assert result.kept.height == 0
    assert result.summary["entries_matched"] == 0 and result.summary["rows_kept"] == 0
