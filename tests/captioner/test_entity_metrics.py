"""The entity metrics of the captioner eval, on hand-made scenes: naming the image's own entity
(its logo is drawn) is recognition, not invention; a name in neither image nor alt-text is."""

from __future__ import annotations

from curate_captioner.evaluate import score_texts
from curate_world.scene import Scene, SceneObject, entity_logo
from curate_world.vocab import ENTITIES


def _scene(with_entity: bool) -> Scene:
    objects = [SceneObject("circle", "red", "small", "top left")]
    if with_entity:
        objects.append(entity_logo(ENTITIES[0].name, "center"))  # reading order: top left, then center
    return Scene(objects=tuple(objects), background="white", texture="plain")


def test_a_recognised_logo_is_not_an_invention():
    scene = _scene(True)
    own, other = ENTITIES[0].name, ENTITIES[1].name
    texts = [f"the {own} logo and a red circle", f"a red circle with the {other} logo", "a red circle"]
    scores = score_texts(texts, [scene] * 3, [False] * 3, ["a red circle"] * 3)
    assert scores["entity_invention"] == round(1 / 3, 4)  # only the other entity's name is invented
    assert scores["entity_recognized"] == round(1 / 3, 4)
    assert scores["entity_recognized_rows"] == 3


def test_a_name_the_alt_text_gives_is_not_invented_and_an_image_without_entity_recognises_none():
    scene = _scene(False)
    other = ENTITIES[1].name
    scores = score_texts([f"a red circle by {other}"], [scene], [False], [f"{other} red circle"])
    assert scores["entity_invention"] == 0.0
    assert scores["entity_recognized"] is None and scores["entity_recognized_rows"] == 0
    assert scores["names_entity_not_in_image"] == 1.0
