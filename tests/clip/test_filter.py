"""clip_filter: never adds rows, keeps exactly ⌈f·n⌉ on a top fraction, deterministic."""

from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from curate.errors import SpecError
from curate.testing import run_step
from curate.testing import strategies as cst
from curate_clip.filter import ClipFilter

scored_tables = cst.tables(
    max_rows=60,
    extra_columns={"clip_score": cst.scores(), "group": st.sampled_from(["a", "b", "c"])},
    extra_dtypes={"clip_score": pl.Float32, "group": pl.Utf8},
)


def _nothing_lost(table: pl.DataFrame, result) -> None:
    assert set(result.kept["uid"]) <= set(table["uid"])
    assert result.kept.height + result.dropped.height == table.height


@given(scored_tables, st.floats(-1, 1))
def test_threshold_keeps_exactly_the_rows_at_or_above_it(table, threshold):
    result = run_step(ClipFilter, table, {"threshold": threshold}, shard_size=7)
    _nothing_lost(table, result)
    expected = table.filter(pl.col("clip_score") >= threshold)["uid"].to_list()
    assert result.kept["uid"].to_list() == expected
    again = run_step(ClipFilter, result.kept, {"threshold": threshold})
    assert again.kept.equals(result.kept)  # idempotent


@given(scored_tables, st.floats(0.01, 1))
def test_top_fraction_keeps_ceil_f_n_of_the_scored_rows(table, fraction):
    result = run_step(ClipFilter, table, {"top_fraction": fraction}, shard_size=5)
    _nothing_lost(table, result)
    scored = table.filter(pl.col("clip_score").is_not_null())
    assert result.kept.height == math.ceil(fraction * scored.height)
    if result.kept.height and result.kept.height < scored.height:
        dropped_scores = result.dropped.filter(pl.col("clip_score").is_not_null())["clip_score"]
        assert result.kept["clip_score"].min() >= dropped_scores.max()
    assert result.summary["kept"] == result.kept.height
    repeat = run_step(ClipFilter, table, {"top_fraction": fraction}, shard_size=1000)
    assert repeat.kept.equals(result.kept)  # same rows whatever the shard layout


@given(scored_tables, st.floats(0, 1))
def test_quantile_by_group_keeps_each_groups_upper_share(table, quantile):
    result = run_step(ClipFilter, table, {"quantile": quantile, "by": "group"})
    _nothing_lost(table, result)
    thresholds = result.summary["thresholds"]
    for row in result.kept.iter_rows(named=True):
        assert row["clip_score"] >= thresholds[str(row["group"])] - 1e-6


def test_rows_without_a_score_are_dropped_with_their_own_reason_or_kept_on_request():
    table = pl.DataFrame({"uid": ["a", "b", "c"], "url": ["u"] * 3, "alt_text": ["t"] * 3,
                          "clip_score": pl.Series([0.9, None, 0.1], dtype=pl.Float32)})
    result = run_step(ClipFilter, table, {"threshold": 0.5})
    assert result.drop_reasons == {"clip_filter:no_score": 1, "clip_filter:low_score": 1}
    kept = run_step(ClipFilter, table, {"threshold": 0.5, "keep_null": True})
    assert kept.kept["uid"].to_list() == ["a", "b"]


@pytest.mark.parametrize("params", [{}, {"threshold": 0.2, "top_fraction": 0.3}, {"by": "group", "threshold": 0.1},
                                    {"threshold": 3}])
def test_rules_are_checked(params):
    with pytest.raises(Exception):
        ClipFilter.Params.model_validate(params)


def test_a_threshold_on_another_score_column_may_lie_outside_a_cosine_range():
    assert ClipFilter.Params(column="clip_edit_score", threshold=-1.5).threshold == -1.5
    with pytest.raises(Exception, match="outside"):
        ClipFilter.Params(column="clip_score_caption", threshold=-1.5)


def test_a_missing_score_column_fails_before_running():
    table = pl.DataFrame({"uid": ["a"], "url": ["u"], "alt_text": ["t"]})
    with pytest.raises(SpecError, match="clip_score"):
        run_step(ClipFilter, table, {"threshold": 0.2})


@st.composite
def grouped_distinct_scores(draw):
    """Groups of rows with distinct scores (ties would let more than the share through, by design)."""
    scores = draw(st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=0, max_size=60, unique=True))
    groups = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=len(scores), max_size=len(scores)))
    return pl.DataFrame({
        "uid": [f"{i:04d}" for i in range(len(scores))],
        "url": ["u"] * len(scores),
        "alt_text": ["t"] * len(scores),
        "clip_score": pl.Series(scores, dtype=pl.Float32),
        "group": groups,
    }, schema_overrides={"group": pl.Utf8})


FLOAT32_NEIGHBOURS = pl.DataFrame({  # hypothesis, CI 2026-12-06: a cut between 0.0 and 1e-45 in float32 was 0.0
    "uid": [f"{i:04d}" for i in range(3)], "url": ["u"] * 3, "alt_text": ["t"] * 3,
    "clip_score": pl.Series([1.4013e-45, 0.0, -1.0], dtype=pl.Float32), "group": ["b"] * 3})


@given(grouped_distinct_scores(), st.floats(0, 1))
@example(FLOAT32_NEIGHBOURS, 0.75)
def test_quantile_by_group_keeps_the_upper_share_of_every_group(table, quantile):
    for size in table.group_by("group").len()["len"]:
        # Positions a hair off a whole row are float noise: the interpolated threshold then sits a
        # hair above a row's score, and scores are float32 (7 digits), so which side it lands is
        # not what this property is about (hypothesis found quantile=1e-12 on two rows, 1e-9 on three).
        position = quantile * (size - 1)
        assume(position == round(position) or abs(position - round(position)) > 1e-6)
    result = run_step(ClipFilter, table, {"quantile": quantile, "by": "group"}, shard_size=9)
    _nothing_lost(table, result)
    kept = result.kept.group_by("group").len()
    kept_of = dict(kept.iter_rows())
    for group, size in table.group_by("group").len().iter_rows():
        # quantile_cont interpolates at position q·(n-1): the rows above it are the group's upper share
        assert kept_of.get(group, 0) == size - math.ceil(quantile * (size - 1) - 1e-9), group
    again = run_step(ClipFilter, table, {"quantile": quantile, "by": "group"}, shard_size=1000)
    assert again.kept.sort("uid").equals(result.kept.sort("uid"))  # same rows whatever the shard layout


@pytest.mark.parametrize("params", [{"threshold": 0.4}, {"top_fraction": 0.25}, {"quantile": 1.0},
                                    {"quantile": 0.5, "by": "group"}])
def test_a_nan_score_is_no_score_under_every_rule(params):
    """NaN passed every threshold, ranked first for top_fraction and made the quantile cut NaN;
    in a stored shard DuckDB even folded isnan() to false from the Parquet statistics."""
    table = pl.DataFrame({"uid": list("abcd"), "url": ["x"] * 4, "alt_text": ["t"] * 4, "group": ["g"] * 4,
                          "clip_score": [0.9, float("nan"), 0.1, 0.5]})
    result = run_step("clip_filter", table, params)
    assert "b" not in result.kept["uid"].to_list() and "a" in result.kept["uid"].to_list()
    reasons = dict(zip(result.dropped["uid"], result.dropped["_drop_reason"], strict=True))
    assert reasons["b"] == "clip_filter:no_score"
