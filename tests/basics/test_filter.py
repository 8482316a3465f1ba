from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from curate.errors import SpecError
from curate.testing import run_step
from curate.testing import strategies as cst
from tests.invariants import assert_nothing_lost, uids

SCORED = cst.tables(extra_columns={"score": cst.scores()}, extra_dtypes={"score": pl.Float64})

# The same predicate in DuckDB SQL (what the step runs) and in polars (an independent oracle).
PREDICATES = {
    "score > 0.25": pl.col("score") > 0.25,
    "length(alt_text) >= 5": pl.col("alt_text").str.len_chars() >= 5,
    "alt_text IS NOT NULL AND url LIKE 'https:%'": pl.col("alt_text").is_not_null()
    & pl.col("url").str.starts_with("https:"),
    "score IS NULL OR score < 0": pl.col("score").is_null() | (pl.col("score") < 0),
}


@given(table=SCORED, where=st.sampled_from(sorted(PREDICATES)), keep_null=st.booleans(),
       shard_size=st.sampled_from([7, 1000]))
def test_filter_keeps_exactly_the_matching_rows_and_records_the_rest(pm, tmp_path, table, where, keep_null,
                                                                      shard_size):
    result = run_step("filter", table, {"where": where, "keep_null": keep_null}, pm=pm, shard_size=shard_size,
                      workdir=tmp_path)
    assert_nothing_lost(table, result)
    expected = table.filter(PREDICATES[where].fill_null(keep_null))
    assert uids(result.kept) == uids(expected)
    assert result.kept.columns == table.columns
    assert set(result.drop_reasons) <= {"filter"}


def test_a_null_result_drops_the_row_unless_keep_null(pm):
    table = pl.DataFrame({"uid": ["a", "b", "c"], "url": ["u"] * 3, "alt_text": ["t"] * 3, "score": [0.5, None, -1.0]})
    assert uids(run_step("filter", table, {"where": "score > 0"}, pm=pm).kept) == ["a"]
    assert uids(run_step("filter", table, {"where": "score > 0", "keep_null": True}, pm=pm).kept) == ["a", "b"]


def test_the_drop_reason_defaults_to_the_label_and_can_be_set(pm):
    table = pl.DataFrame({"uid": ["a", "b"], "url": ["u", "v"], "alt_text": ["short", "a longer text"]})
    result = run_step("filter", table, {"where": "length(alt_text) > 5", "reason": "too_short"}, pm=pm)
    assert result.drop_reasons == {"too_short": 1}
    assert uids(result.kept) == ["b"]


def test_a_where_that_does_not_bind_fails_at_plan_time_naming_the_column(pm):
    table = pl.DataFrame({"uid": ["a"], "url": ["u"], "alt_text": ["t"]})
    with pytest.raises(SpecError, match="alt_txt"):
        run_step("filter", table, {"where": "length(alt_txt) > 3"}, pm=pm)


def test_a_where_that_is_not_boolean_fails_at_plan_time(pm):
    table = pl.DataFrame({"uid": ["a"], "url": ["u"], "alt_text": ["t"]})
    with pytest.raises(SpecError, match="boolean"):
        run_step("filter", table, {"where": "length(alt_text)"}, pm=pm)


def test_quotes_in_the_reason_are_kept_verbatim(pm):
    table = pl.DataFrame({"uid": ["a"], "url": ["u"], "alt_text": ["t"]})
    result = run_step("filter", table, {"where": "false", "reason": "it's bad"}, pm=pm)
    assert result.drop_reasons == {"it's bad": 1}
