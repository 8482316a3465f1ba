"""The intervals the pipeline evaluation (``curate_world.web_eval --run``) puts beside its figures."""

from __future__ import annotations

import numpy as np
import pytest
from curate_world.web_eval import auc_gap_with_ci, auc_with_ci, proportion, wilson
from hypothesis import example, given, settings
from hypothesis import strategies as st


@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_a_wilson_interval_holds_its_proportion_inside_zero_one(pair: tuple[int, int]) -> None:
    successes, rows = pair
    low, high = wilson(successes, rows)
    assert 0.0 <= low <= successes / rows + 1e-4 and successes / rows - 1e-4 <= high <= 1.0
    assert proportion(successes, rows)["rows"] == rows


def test_wilson_matches_a_textbook_value_and_narrows_with_rows() -> None:
    assert wilson(81, 263) == [0.2553, 0.3662]  # Wilson (1927) / Newcombe (1998) worked example: 0.2553–0.3662
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    assert wilson(900, 1000)[1] - wilson(900, 1000)[0] < wilson(90, 100)[1] - wilson(90, 100)[0]
    assert wilson(0, 0) is None


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**16), st.integers(5, 200), st.integers(5, 200), st.floats(0.0, 2.0))
def test_the_auc_is_mann_whitney_with_ties_and_its_interval_holds_it(seed: int, npos: int, nneg: int, shift: float) -> None:
    from curate_clip.api import auc

    rng = np.random.default_rng(seed)
    positive = np.round(rng.normal(shift, 1.0, npos), 1)  # rounded: ties on purpose
    negative = np.round(rng.normal(0.0, 1.0, nneg), 1)
    result = auc_with_ci(positive, negative, rounds=200, seed=seed)
    assert abs(result["value"] - auc(positive, negative)) < 1e-4
    low, high = result["ci95"]
    assert low - 1e-9 <= result["value"] <= high + 1e-9 or high - low < 0.02


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**16), st.integers(5, 120), st.integers(5, 120), st.floats(0.0, 2.0))
@example(seed=5, npos=104, nneg=5, shift=0.75)  # CI bounds 0.0537 and -0.0538: a rounding tie
def test_the_paired_auc_gap_is_the_difference_and_antisymmetric(seed: int, npos: int, nneg: int, shift: float) -> None:
    from curate_clip.api import auc

    rng = np.random.default_rng(seed)
    positive_a, negative_a = np.round(rng.normal(0.0, 1.0, npos), 1), np.round(rng.normal(0.0, 1.0, nneg), 1)
    positive_b, negative_b = positive_a + shift, negative_a  # b separates better by the shift
    gap = auc_gap_with_ci(positive_a, negative_a, positive_b, negative_b, rounds=100, seed=seed)
    assert abs(gap["value"] - (auc(positive_b, negative_b) - auc(positive_a, negative_a))) < 1e-4
    assert gap["ci95"][0] >= -1e-9  # never worse on any resample: the same rows, shifted up
    back = auc_gap_with_ci(positive_b, negative_b, positive_a, negative_a, rounds=100, seed=seed)
    # equal up to the 4-decimal rounding of the reported figures (-0.05375 and 0.05375 may round apart)
    assert back["value"] == pytest.approx(-gap["value"], abs=1.01e-4)
    assert back["ci95"] == pytest.approx([-gap["ci95"][1], -gap["ci95"][0]], abs=1.01e-4)
    same = auc_gap_with_ci(positive_a, negative_a, positive_a, negative_a, rounds=50, seed=seed)
    assert same == {"value": 0.0, "ci95": [0.0, 0.0]}


def test_clip_paired_gaps_pairs_two_scorings_by_uid_whatever_their_row_order() -> None:
    import polars as pl
    from curate_world.api import clip_paired_gaps

    rng = np.random.default_rng(3)
    kinds = ["faithful", "partial", "wrong_attribute", "unrelated"] * 50
    before = pl.DataFrame({"uid": [f"u{i}" for i in range(200)], "gt_noise_type": kinds,
                           "clip_edit_score": rng.normal(size=200)})
    good = [1.0 if kind in ("faithful", "partial") else 0.0 for kind in kinds]
    after = before.with_columns(clip_edit_score=pl.Series(good) + rng.normal(scale=0.01, size=200)).reverse()
    same = clip_paired_gaps(before, before)
    assert same["aligned_vs_misaligned"]["value"] == 0 and same["partial_vs_wrong_attribute"]["value"] == 0
    gaps = clip_paired_gaps(before, after.select("uid", "clip_edit_score"))  # after needs no ground truth
    for gap in gaps.values():
        assert gap["value"] > 0.3 and gap["ci95"][0] > 0
    assert gaps == clip_paired_gaps(before, after.sample(fraction=1.0, shuffle=True, seed=1))
