"""The world CLIP as encoder: the captioner's tower and preprocessing see an image exactly as the
clip plugin's model does."""

from __future__ import annotations

import pytest
import torch

from tests.captioner.conftest import images

clip_models = pytest.importorskip("curate_clip.models")
pytestmark = pytest.mark.skipif(not clip_models.WORLD_CHECKPOINT.exists(), reason="world CLIP weights not installed")


def test_tower_matches_the_world_clip() -> None:
    from curate_captioner.encoder import encode, preprocess
    from curate_captioner.worldclip import _scorer, world_clip_tower

    tower, config = world_clip_tower()
    model, clip_preprocess, _ = _scorer()
    pictures = images(3, size=64)
    ours, _ = encode(tower, preprocess(pictures, config), with_tokens=False)
    with torch.no_grad():
        theirs = model.encode_image(torch.stack([clip_preprocess(p) for p in pictures]))
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_scores_are_cosines() -> None:
    from curate_captioner.worldclip import world_clip_scores

    scores = world_clip_scores(images(2, size=64), ["a red circle", ""])
    assert len(scores) == 2 and all(-1.0 <= s <= 1.0 for s in scores)
