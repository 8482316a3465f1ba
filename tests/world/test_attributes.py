"""The attribute extractor reads every kind of caption the world writes, and scores it honestly."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from curate_world.alttext import write_alt_text
from curate_world.attributes import extract_attributes, score_caption
from curate_world.describe import describe
from curate_world.scene import Scene, SceneObject, entity_logo, sample_scene
from curate_world.testing import scenes, seeds
from hypothesis import given, settings


@settings(max_examples=25)
@given(scenes())
def test_extracts_everything_from_a_canonical_description(scene: Scene) -> None:
    mentions = extract_attributes(describe(scene))
    assert sorted((m.size, m.color, m.shape, m.count) for m in mentions.objects) == sorted(
        (o.size, o.color, o.shape, 1) for o in scene.objects
    )
    assert mentions.background == scene.background and mentions.texture == scene.texture
    assert mentions.entities == ((scene.entity,) if scene.entity else ())
    score = score_caption(describe(scene), scene)
    assert (score.pair_precision, score.pair_recall, score.count_error) == (1.0, 1.0, 0)
    assert score.entity_retained in (None, True) and not score.entity_hallucinated


@settings(max_examples=25)
@given(seeds)
def test_alt_texts_score_as_their_noise_type_says(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, entity_rate=0.5)
    other = sample_scene(rng)
    faithful = write_alt_text(scene, "faithful", rng)
    score = score_caption(faithful.text, scene)
    assert (score.pair_recall, score.pair_precision, score.count_error) == (1.0, 1.0, 0), faithful
    assert score.entity_retained == (faithful.mentions_entity if scene.entity else None)

    partial = score_caption(write_alt_text(scene, "partial", rng).text, scene)
    assert partial.pair_precision in (None, 1.0) and partial.shape_precision in (None, 1.0)
    assert partial.color_precision in (None, 1.0) and partial.count_error <= 0

    wrong = write_alt_text(scene, "wrong_attribute", rng)
    score = score_caption(wrong.text, scene)
    assert score.pair_precision < 1.0 or score.count_error != 0, wrong

    for kind in ("boilerplate", "empty"):
        junk = extract_attributes(write_alt_text(scene, kind, rng, other=other).text)
        assert not junk.objects and not junk.colors and not junk.entities


@pytest.mark.parametrize(
    ("caption", "pairs", "count"),
    [
        ("Two red circles and 3 blue stars", {("red", "circle"): 2, ("blue", "star"): 3}, 5),
        ("a big grey disc next to a violet rhombus", {("gray", "circle"): 1, ("purple", "diamond"): 1}, 2),
        ("CIRCLES everywhere", {}, 2),
        ("a crossing guard holding a starry flag", {}, 0),  # no shape words, only lookalikes
        ("a red, large circle", {}, 1),  # a comma ends the phrase: "red" is a loose color
    ],
)
def test_free_text_examples(caption: str, pairs: dict[tuple[str, str], int], count: int) -> None:
    mentions = extract_attributes(caption)
    assert mentions.pairs == Counter(pairs)
    assert mentions.object_count == count


def test_background_and_markers_are_not_objects() -> None:
    mentions = extract_attributes("A purple hexagon with yellow stripes on a dotted green background")
    assert mentions.pairs == Counter({("purple", "hexagon"): 1})
    assert mentions.colors == {"purple"}
    assert mentions.markers == (("yellow", "stripes"),)
    assert (mentions.background, mentions.texture) == ("green", "dots")


def test_naming_an_entity_counts_as_mentioning_its_logo() -> None:
    scene = Scene(
        (entity_logo("Zorblax Tower", "left"), SceneObject("star", "red", "small", "right")), "white", "plain"
    )
    score = score_caption("zorblax   TOWER and a red star", scene)
    assert score.entity_retained and score.pair_recall == 1.0 and score.pair_precision == 1.0
    other = score_caption("Velmora Cola and a red star", scene)
    assert not other.entity_retained and other.entity_hallucinated
    assert score_caption("a red star", scene).pair_recall == 0.5
