from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from curate_dedup.testing import planted
from curate_dedup.worldeval import evaluate, pair_counts, scores

pytest.importorskip("faiss")


def test_pair_counts_and_scores():
    predicted = np.array([0, 0, 0, 1, 2, 3])
    truth = np.array([0, 0, 1, 1, 2, 2])
    counts = pair_counts(predicted, truth)
    assert counts == {"predicted": 3, "true": 3, "both": 1}
    assert scores(counts) == {"precision": 0.3333, "recall": 0.3333}
    assert scores({"predicted": 0, "true": 0, "both": 0}) == {"precision": 1.0, "recall": 1.0}


def test_the_curve_on_planted_groups():
    data = planted([3, 1, 2, 1, 1, 4], seed=2)
    truth = data.truth
    sizes = np.bincount(truth)
    frame = pl.DataFrame({
        "uid": data.table["uid"],
        "gt_dup_group": pl.Series([int(t) if sizes[t] > 1 else None for t in truth], dtype=pl.Int64),
        "gt_description": [f"scene {t}" for t in truth],
    })
    curve = evaluate(frame, data.vectors.astype(np.float16), {}, eps_grid=(0.01, 0.06))
    assert len(curve) == 4
    for point in curve:
        assert point["planted"]["precision"] == point["planted"]["recall"] == 1.0
        assert point["planted"]["true"] == 3 + 1 + 6


def test_separability_of_planted_groups():
    from curate_dedup.worldeval import separability

    data = planted([3, 1, 2, 1, 1, 4], seed=2)
    sizes = np.bincount(data.truth)
    frame = pl.DataFrame({
        "uid": data.table["uid"],
        "gt_dup_group": pl.Series([int(t) if sizes[t] > 1 else None for t in data.truth], dtype=pl.Int64),
        "gt_description": [f"scene {t}" for t in data.truth],
    })
    facts = separability(frame, data.vectors)
    assert facts["planted_rows_nearest_in_group"] == 1.0
    assert facts["planted_pair_cosine"]["p1"] > 0.99 > facts["nearest_non_duplicate_cosine"]["p99"]
