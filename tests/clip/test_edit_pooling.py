"""How a text's edits make its margin (``edit_pooling``): max, or a softmax at a temperature."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.testing import run_step
from curate_clip.score import ClipScore, pooled_margins
from tests.clip.conftest import image_table

scores = st.floats(-1.0, 1.0, allow_nan=False, width=32)


@st.composite
def rows_and_edits(draw):
    """Some rows' own scores and, for each, 0 to 6 edit scores, interleaved as the step makes them."""
    own = draw(st.lists(scores, min_size=1, max_size=6))
    pairs = draw(st.lists(st.tuples(st.integers(0, len(own) - 1), scores), max_size=24))
    return (np.array(own, dtype=np.float64), np.array([r for r, _ in pairs], dtype=np.int64),
            np.array([s for _, s in pairs], dtype=np.float64))


def reference(own: np.ndarray, rows: np.ndarray, edits: np.ndarray, t: float) -> list[float]:
    out = []
    for row, score in enumerate(own):
        mine = edits[rows == row]
        out.append(math.nan if not len(mine) else -t * math.log1p(sum(math.exp((e - score) / t) for e in mine)))
    return out


@settings(max_examples=200, deadline=None)
@given(rows_and_edits(), st.sampled_from([0.005, 0.02, 0.1, 1.0]))
def test_softmax_is_never_above_zero_nor_above_the_max_margin_and_loses_at_most_t_log_edits(case, t):
    own, rows, edits = case
    hard = pooled_margins(rows, edits, own, "max", t)
    soft = pooled_margins(rows, edits, own, "softmax", t)
    counts = np.bincount(rows, minlength=len(own))
    assert np.array_equal(np.isnan(hard), counts == 0) and np.array_equal(np.isnan(soft), counts == 0)
    has = counts > 0
    assert (soft[has] <= 1e-12).all()
    assert (soft[has] <= np.minimum(hard[has], 0) + 1e-9).all()
    assert (soft[has] >= np.minimum(hard[has], 0) - t * np.log1p(counts[has]) - 1e-9).all()
    assert np.allclose(soft, reference(own, rows, edits, t), equal_nan=True, rtol=1e-9, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(rows_and_edits(), scores)
def test_one_more_edit_never_raises_a_softmax_margin(case, extra):
    own, rows, edits = case
    before = pooled_margins(rows, edits, own, "softmax", 0.02)
    after = pooled_margins(np.append(rows, 0), np.append(edits, extra), own, "softmax", 0.02)
    assert after[0] <= (0.0 if np.isnan(before[0]) else before[0]) + 1e-12
    assert np.array_equal(after[1:], before[1:], equal_nan=True)


def test_far_apart_scores_do_not_overflow():
    """An edit 2.0 above its text at T = 0.001 is exp(2000) unscaled: the sum is taken stably."""
    own = np.array([-1.0, 1.0])
    soft = pooled_margins(np.array([0, 0, 1]), np.array([1.0, 0.5, -1.0]), own, "softmax", 0.001)
    assert np.isfinite(soft).all()
    assert soft[0] == pytest.approx(-2.0, abs=1e-6) and soft[1] == pytest.approx(0.0, abs=1e-12)


def test_the_step_pools_with_softmax_when_asked_and_weights_the_pooled_margin(small_world):
    table = image_table(small_world, limit=24)
    common = {"edits": "world", "batch_size": 8}
    hard = run_step("clip_score", table, common, shard_size=9).kept
    soft = run_step("clip_score", table, {**common, "edit_pooling": "softmax", "edit_temperature": 0.05,
                                          "edit_weight": 8.0}, shard_size=9).kept
    assert hard["clip_edit_margin"].null_count() == soft["clip_edit_margin"].null_count() < table.height
    both = hard.select("uid", hard_margin="clip_edit_margin").join(
        soft.select("uid", "clip_score", "clip_edit_score", soft_margin="clip_edit_margin"), on="uid").drop_nulls()
    for row in both.iter_rows(named=True):
        assert row["soft_margin"] <= min(row["hard_margin"], 0.0) + 1e-6
        assert row["clip_edit_score"] == pytest.approx(row["clip_score"] + 8.0 * row["soft_margin"], abs=1e-4)
    assert (both["soft_margin"] < both["hard_margin"].clip(upper_bound=0.0) - 1e-4).any()  # not just max's margin


def test_pooling_and_temperature_are_checked_and_change_the_fingerprint():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="edit_pooling"):
        ClipScore.Params(edits="world", edit_pooling="mean")
    with pytest.raises(ValidationError, match="edit_temperature"):
        ClipScore.Params(edits="world", edit_pooling="softmax", edit_temperature=1e-300)
    prints = {ClipScore.Params(edits="world", **extra).fingerprint_dict().__repr__()
              for extra in ({}, {"edit_pooling": "softmax"}, {"edit_pooling": "softmax", "edit_temperature": 0.05})}
    assert len(prints) == 3
