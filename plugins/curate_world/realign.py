"""The caption a careful annotator writes from an image and its alt-text: everything the image
shows, plus the one thing only the alt-text can know, the entity's name, kept when the alt-text
names the entity that really is in the image. Wrong colors, shapes and counts, other images' objects
and boilerplate are dropped because the annotator looks at the image.

This is the target of the realignment captioner: it can be scored with
:func:`curate_world.attributes.score_caption`, and :func:`curate_world.describe.parse_description`
reads it back exactly.
"""

from __future__ import annotations

from curate_world.alttext import AltText
from curate_world.describe import describe
from curate_world.phrasing import sentence_case
from curate_world.scene import Scene


def realigned_caption(scene: Scene, alt: AltText) -> str:
    return sentence_case(describe(scene, name_entity=alt.mentions_entity)) + "."
