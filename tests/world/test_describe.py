"""The canonical description is exact: it parses back to the scene it describes."""

from __future__ import annotations

import numpy as np
import pytest
from curate_world.describe import describe, parse_description
from curate_world.phrasing import sentence_case
from curate_world.scene import Scene, SceneObject, sample_scene
from curate_world.testing import scenes, seeds
from hypothesis import given, settings


@settings(max_examples=25)
@given(scenes())
def test_parse_inverts_describe(scene: Scene) -> None:
    assert parse_description(describe(scene)) == scene
    # As a sentence, and with logos described by their look only: the signature identifies them.
    assert parse_description(sentence_case(describe(scene)) + ".") == scene
    assert parse_description(describe(scene, name_entity=False)) == scene


@settings(max_examples=25)
@given(seeds)
def test_sampled_scenes_are_valid_and_round_trip(seed: int) -> None:
    scene = sample_scene(np.random.default_rng(seed), entity_rate=0.5)
    assert 1 <= len(scene.objects) <= 3
    assert sum(obj.entity is not None for obj in scene.objects) <= 1
    assert len({obj.position for obj in scene.objects}) == len(scene.objects)
    assert parse_description(describe(scene)) == scene
    assert Scene.from_objects_json(scene.objects_json(), scene.background, scene.texture) == scene


@settings(max_examples=20)
@given(seeds)
def test_single_label_scenes_have_one_large_object(seed: int) -> None:
    scene = sample_scene(np.random.default_rng(seed), entity_rate=0.5, single_label=True)
    large = [obj for obj in scene.objects if obj.size == "large"]
    assert len(large) == 1
    if scene.entity is not None:
        assert large[0].entity == scene.entity


def test_example_reads_naturally() -> None:
    scene = Scene(
        (SceneObject("star", "blue", "small", "top"), SceneObject("circle", "red", "large", "left")),
        "green",
        "stripes",
    )
    assert (
        describe(scene)
        == "a small blue star at the top and a large red circle on the left, on a striped green background"
    )


@pytest.mark.parametrize(
    "text",
    [
        "a red circle on the left",  # no size, no background
        "a large red circle on the left, on a plain mauve background",
        "a large red circle on the left; a small blue star at the top, on a plain white background",
        "the Zorblax Tower logo (a large red circle with a white ring) at the top, on a plain white background",
        "a large purple hexagon with a white dot at the top, on a plain white background",  # no such logo
    ],
)
def test_parse_rejects_text_outside_the_grammar(text: str) -> None:
    with pytest.raises(ValueError, match="canonical|logo"):
        parse_description(text)
