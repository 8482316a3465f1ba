"""What is drawn is what the ground truth says: colors, relative sizes, logo markers."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from curate_world.render import encode_image, render_scene
from curate_world.scene import Scene, SceneObject, entity_logo
from curate_world.vocab import (
    BACKGROUNDS,
    COLORS,
    ENTITIES,
    POSITIONS,
    SHAPES,
    color_distance,
    colors_visible_on,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

NAMES = list(COLORS)
PALETTE = np.array([COLORS[name] for name in NAMES], dtype=np.float32)


def object_pixels(image: Image.Image, background: str) -> Counter[str]:
    """Pixels far from the background, each labelled with the nearest named color."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3)
    far = np.linalg.norm(pixels - np.array(BACKGROUNDS[background], dtype=np.float32), axis=1) > 60
    nearest = np.argmin(np.linalg.norm(pixels[far][:, None, :] - PALETTE[None], axis=2), axis=1)
    return Counter(NAMES[i] for i in nearest)


@st.composite
def single_object(draw: st.DrawFn) -> tuple[str, str, str, str]:
    background = draw(st.sampled_from(list(BACKGROUNDS)))
    color = draw(st.sampled_from(colors_visible_on(background)))
    return draw(st.sampled_from(SHAPES)), color, draw(st.sampled_from(list(POSITIONS))), background


@settings(max_examples=25, deadline=None)
@given(single_object(), st.sampled_from(["jpeg", "png"]))
def test_dominant_color_and_area_order_match_the_truth(
    case: tuple[str, str, str, str], image_format: str
) -> None:
    shape, color, position, background = case
    areas = []
    for size in ("small", "medium", "large"):
        scene = Scene((SceneObject(shape, color, size, position),), background, "plain")
        data = encode_image(render_scene(scene, 64), image_format)
        counts = object_pixels(Image.open(io.BytesIO(data)), background)
        assert counts.most_common(1)[0][0] == color, (scene, counts.most_common(3))
        areas.append(counts.total())
    assert areas[0] < areas[1] < areas[2], areas


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.name)
def test_logos_show_shape_color_and_marker(entity) -> None:  # type: ignore[no-untyped-def]
    background = next(
        b
        for b in BACKGROUNDS
        if entity.color in colors_visible_on(b)
        and color_distance(COLORS[entity.marker_color], BACKGROUNDS[b]) > 60
    )
    scene = Scene((entity_logo(entity.name, "center"),), background, "plain")
    counts = object_pixels(render_scene(scene, 64), background)
    assert counts.most_common(1)[0][0] == entity.color
    assert counts[entity.marker_color] >= 15, f"{entity.name}'s {entity.marker} is barely visible: {counts}"


def test_rendering_is_deterministic_and_jitter_moves_objects() -> None:
    scene = Scene((SceneObject("star", "red", "large", "center"),), "white", "dots")
    first = encode_image(render_scene(scene, 64, np.random.default_rng(1)))
    assert first == encode_image(render_scene(scene, 64, np.random.default_rng(1)))
    assert first != encode_image(render_scene(scene, 64, np.random.default_rng(2)))
    assert render_scene(scene, 48).size == (48, 48)


def test_unknown_format_is_an_error() -> None:
    with pytest.raises(ValueError, match="jpeg.*png"):
        encode_image(Image.new("RGB", (4, 4)), "gif")
