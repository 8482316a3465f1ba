"""Acceptance: the shipped world CLIP separates true alt-text (faithful, partial) from noise
(wrong_attribute, unrelated, boilerplate, empty) on a fresh world it never saw."""

from __future__ import annotations

from curate_clip.training.evaluate import evaluate


def test_the_shipped_world_clip_separates_true_from_noisy_alt_text(tmp_path):
    result = evaluate(n=400, seed=777, workdir=tmp_path)
    assert result["auc"] >= 0.95, result
    for kind in ("unrelated", "boilerplate", "empty"):
        assert result["auc_by_negative_type"][kind] >= 0.95, result
