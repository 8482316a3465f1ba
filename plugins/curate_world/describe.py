"""The canonical description of a scene, and its exact inverse.

Grammar (one sentence, lowercase except entity names)::

    description := objects ", on a " TEXTURE_ADJ " " BACKGROUND " background"
    objects     := object | object " and " object | object ", " object " and " object
    object      := [ "the " NAME " logo (" ] "a " SIZE " " COLOR " " SHAPE [ " with " MARKER ] [ ")" ] " " WHERE
    MARKER      := COLOR " stripes" | ("a " | "an ") COLOR (" dot" | " ring" | " bar" | " x")

for example "the Zorblax Tower logo (a large purple hexagon with yellow stripes) on the right and a
small blue star at the top, on a striped green background".
"""

from __future__ import annotations

import re

from curate_world.phrasing import article
from curate_world.scene import Scene, SceneObject, sorted_objects
from curate_world.vocab import (
    BACKGROUNDS,
    COLORS,
    ENTITIES,
    ENTITY_BY_NAME,
    MARKERS,
    POSITION_PHRASES,
    SHAPES,
    SIZES,
    TEXTURES,
)


def marker_phrase(marker: str, color: str) -> str:
    return (
        f"{color} {MARKERS[marker]}" if marker == "stripes" else f"{article(color)} {color} {MARKERS[marker]}"
    )


def describe_object(obj: SceneObject, *, name_entity: bool = True) -> str:
    text = f"a {obj.size} {obj.color} {obj.shape}"
    if obj.entity is not None:
        entity = ENTITY_BY_NAME[obj.entity]
        text += " with " + marker_phrase(entity.marker, entity.marker_color)
        if name_entity:
            text = f"the {entity.name} logo ({text})"
    return f"{text} {POSITION_PHRASES[obj.position]}"


def join_phrases(phrases: list[str]) -> str:
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def describe(scene: Scene, *, name_entity: bool = True) -> str:
    """The canonical full description. ``name_entity=False`` describes a logo by its look only, as
    someone who does not know the brand would."""
    objects = join_phrases([describe_object(obj, name_entity=name_entity) for obj in scene.objects])
    return f"{objects}, on a {TEXTURES[scene.texture]} {scene.background} background"


def _alternatives(words: object) -> str:
    # Longest first, so "top left" wins over "top" and "bottom right corner" over "bottom".
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))  # type: ignore[arg-type]


_PHRASE_TO_POSITION = {phrase: position for position, phrase in POSITION_PHRASES.items()}
_MARKER_TO_NAME = {noun: marker for marker, noun in MARKERS.items()}
_TEXTURE_BY_ADJECTIVE = {adjective: texture for texture, adjective in TEXTURES.items()}
_OBJECT = re.compile(
    rf"(?:the (?P<entity>{_alternatives(ENTITY_BY_NAME)}) logo \()?"
    rf"a (?P<size>{_alternatives(SIZES)}) (?P<color>{_alternatives(COLORS)}) (?P<shape>{_alternatives(SHAPES)})"
    rf"(?: with (?:an? )?(?P<marker_color>{_alternatives(COLORS)}) (?P<marker>{_alternatives(_MARKER_TO_NAME)}))?"
    rf"(?P<close>\))? (?P<where>{_alternatives(_PHRASE_TO_POSITION)})"
)
_BACKGROUND = re.compile(
    rf", on a (?P<texture>{_alternatives(_TEXTURE_BY_ADJECTIVE)}) (?P<background>{_alternatives(BACKGROUNDS)}) background\.?$"
)
_SIGNATURES = {(e.shape, e.color, e.marker, e.marker_color): e.name for e in ENTITIES}


def parse_description(text: str) -> Scene:
    """Invert :func:`describe`: ``parse_description(describe(scene)) == scene``.

    A logo described without its name is still recognised by its signature (shape, color and
    marker), because the signature is what the image shows. Raises ``ValueError`` naming the
    character offset where the text leaves the grammar; use
    :func:`curate_world.attributes.extract_attributes` for free-form captions.
    """
    text = text.strip()
    if text.startswith(("A ", "The ")):  # a description used as a sentence
        text = text[0].lower() + text[1:]
    background = _BACKGROUND.search(text)
    if background is None:
        raise ValueError(
            f"not a canonical description (no ', on a <texture> <color> background' ending): {text!r}"
        )
    body, objects, position = text[: background.start()], [], 0
    while True:
        match = _OBJECT.match(body, position)
        if match is None:
            raise ValueError(
                f"not a canonical description: no object phrase at offset {position} of {body!r}"
            )
        objects.append(_object_from_match(match, text))
        position = match.end()
        if position == len(body):
            break
        for separator in (", ", " and "):
            if body.startswith(separator, position):
                position += len(separator)
                break
        else:
            raise ValueError(
                f"not a canonical description: expected ', ' or ' and ' at offset {position} of {body!r}"
            )
    return Scene(
        sorted_objects(objects),
        background.group("background"),
        _TEXTURE_BY_ADJECTIVE[background.group("texture")],
    )


def _object_from_match(match: re.Match[str], text: str) -> SceneObject:
    shape, color = match.group("shape"), match.group("color")
    size, position = match.group("size"), _PHRASE_TO_POSITION[match.group("where")]
    named, marker = match.group("entity"), match.group("marker")
    if bool(named) != bool(match.group("close")):
        raise ValueError(f"unbalanced logo parenthesis in {match.group(0)!r} of {text!r}")
    if marker is None:
        if named:
            raise ValueError(f"logo of {named} without its marker in {text!r}")
        return SceneObject(shape, color, size, position)
    signature = (shape, color, _MARKER_TO_NAME[marker], match.group("marker_color"))
    entity = _SIGNATURES.get(signature)
    if entity is None or (named and named != entity):
        raise ValueError(f"{match.group(0)!r} is not the logo of {named or 'any entity'} in {text!r}")
    return SceneObject(shape, color, size, position, entity)
