"""Running the encoder at another input size: open_clip interpolates the position embeddings, the
patch grid grows, every other weight stays, and the size survives save/load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from curate_captioner.encoder import from_open_clip, resize_tower
from curate_captioner.errors import CaptionerError
from curate_captioner.model import Captioner
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.captioner.conftest import TOWER, images


@settings(max_examples=15, deadline=None)
@given(cells=st.integers(1, 6))
def test_the_patch_grid_follows_the_image_size(cells: int) -> None:
    tower, config = from_open_clip(TOWER, source="random test tower")
    patch = TOWER["vision_cfg"]["patch_size"]
    resized, new_config = resize_tower(tower, config, cells * patch)
    assert new_config["image_size"] == new_config["vision_cfg"]["image_size"] == cells * patch
    assert resized.positional_embedding.shape[0] == cells * cells + 1
    old, new = tower.state_dict(), resized.state_dict()
    for name, tensor in old.items():
        if name != "positional_embedding":
            assert torch.equal(tensor, new[name]), name
    assert torch.equal(new["positional_embedding"][0], old["positional_embedding"][0])  # class token's
    if cells * patch == config["image_size"]:
        assert resized is tower


@settings(max_examples=10, deadline=None)
@given(size=st.integers(9, 100).filter(lambda s: s % 8))
def test_a_size_off_the_patch_grid_is_refused(size: int) -> None:
    tower, config = from_open_clip(TOWER, source="random test tower")
    with pytest.raises(CaptionerError, match="multiple of the tower's patch size 8"):
        resize_tower(tower, config, size)


def test_a_resized_captioner_saves_and_loads(make_captioner: Callable[..., Any], tmp_path: Path) -> None:
    captioner = make_captioner(features="pooled+tokens")
    captioner.set_encoder_image_size(64)
    pooled, tokens = captioner.image_features(images(2))
    assert tokens is not None and tokens.shape[1] == 16  # (64 / 8)² patches, under max_patch_tokens
    captioner.save(tmp_path / "big")
    loaded = Captioner.load(tmp_path / "big")
    assert loaded.encoder_config["image_size"] == 64
    again, again_tokens = loaded.image_features(images(2))
    assert torch.allclose(pooled, again) and again_tokens is not None and torch.allclose(tokens, again_tokens)
