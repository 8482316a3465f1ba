from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from curate.testing import run_step
from curate.testing import strategies as cst
from tests.invariants import assert_nothing_lost, uids


def big_table(rows: int, offset: int = 0) -> pl.DataFrame:
    return pl.DataFrame({
        "uid": [f"{i:016x}" for i in range(offset, offset + rows)],
        "url": [f"https://example.com/{i}.jpg" for i in range(rows)],
        "alt_text": ["a photo"] * rows,
        "group": [["a", "b", "c", "d"][i % 4] for i in range(rows)],
    })


@settings(max_examples=10)
@given(fraction=st.floats(0.02, 0.98), seed=st.integers(0, 2**31), offset=st.integers(0, 10**9))
def test_a_fraction_keeps_a_binomial_number_of_rows(pm, tmp_path, fraction, seed, offset):
    n = 2000
    table = big_table(n, offset)
    result = run_step("sample", table, {"fraction": fraction}, seed=seed, pm=pm, workdir=tmp_path)
    assert_nothing_lost(table, result)
    # Five standard deviations: a seeded draw that falls outside is a biased hash, not bad luck.
    tolerance = 5 * math.sqrt(n * fraction * (1 - fraction)) + 1
    assert abs(result.kept.height - n * fraction) <= tolerance
    assert result.drop_reasons in ({}, {"sample": n - result.kept.height})


@given(table=cst.tables(max_rows=30), count=st.integers(0, 40), seed=st.integers(0, 1000))
def test_a_count_keeps_exactly_that_many_rows(pm, tmp_path, table, count, seed):
    result = run_step("sample", table, {"count": count}, seed=seed, pm=pm, workdir=tmp_path)
    assert_nothing_lost(table, result)
    assert result.kept.height == min(count, table.height)


def test_a_count_by_group_keeps_that_many_per_group(pm):
    table = big_table(103)
    result = run_step("sample", table, {"count": 5, "by": "group"}, pm=pm, shard_size=10)
    assert result.kept.group_by("group").len().sort("group")["len"].to_list() == [5, 5, 5, 5]
    assert_nothing_lost(table, result)


@settings(max_examples=8)
@given(table=cst.tables(min_rows=1, max_rows=12, duplicates=False),
       params=st.sampled_from([{"fraction": 0.5}, {"count": 4}, {"fraction": 0.3, "seed": 7}]))
def test_the_sample_does_not_depend_on_the_shard_size(pm, tmp_path, table, params):
    picked = [
        uids(run_step("sample", table, params, seed=3, shard_size=size, pm=pm, workdir=tmp_path).kept)
        for size in (1, 7, 1000)
    ]
    assert picked[0] == picked[1] == picked[2]


@settings(max_examples=6)
@given(fraction=st.floats(0.1, 0.9), seed=st.integers(0, 1000))
def test_the_sample_is_deterministic_in_the_seed(pm, tmp_path, fraction, seed):
    table = big_table(300)
    first = run_step("sample", table, {"fraction": fraction}, seed=seed, pm=pm, workdir=tmp_path)
    again = run_step("sample", table, {"fraction": fraction}, seed=seed, pm=pm, workdir=tmp_path)
    other = run_step("sample", table, {"fraction": fraction}, seed=seed + 1, pm=pm, workdir=tmp_path)
    assert first.kept.equals(again.kept)
    assert uids(first.kept) != uids(other.kept)


def test_the_params_seed_overrides_the_run_seed(pm):
    table = big_table(200)
    a = run_step("sample", table, {"fraction": 0.5, "seed": 11}, seed=1, pm=pm)
    b = run_step("sample", table, {"fraction": 0.5, "seed": 11}, seed=2, pm=pm)
    assert a.kept.equals(b.kept)


@pytest.mark.parametrize("params, message", [
    ({"fraction": 28}, "less than or equal to 1"),
    ({"fraction": 0}, "greater than 0"),
    ({}, "exactly one of 'fraction' or 'count'"),
    ({"fraction": 0.5, "count": 3}, "exactly one of 'fraction' or 'count'"),
    ({"fraction": 0.5, "by": "group"}, "'by' goes with 'count'"),
    ({"count": -1}, "greater than or equal to 0"),
])
def test_bad_params_are_rejected(pm, params, message):
    with pytest.raises(ValidationError, match=message):
        pm.steps.get("sample").Params.model_validate(params)


@settings(max_examples=8)
@given(fraction=st.floats(0.1, 0.9), seed=st.integers(0, 1000))
def test_a_count_keeps_the_rows_a_fraction_would_rank_first(pm, tmp_path, fraction, seed):
    # Both draw the same number per uid (one in Python, one in SQL), so a count of k keeps exactly the
    # rows a fraction keeping k rows keeps.
    table = big_table(300)
    by_fraction = run_step("sample", table, {"fraction": fraction}, seed=seed, pm=pm, workdir=tmp_path)
    by_count = run_step("sample", table, {"count": by_fraction.kept.height}, seed=seed, pm=pm, workdir=tmp_path)
    assert uids(by_count.kept) == uids(by_fraction.kept)
