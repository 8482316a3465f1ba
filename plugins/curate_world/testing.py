"""Hypothesis strategies for world scenes, for tests here and in plugins scored against the world.

Needs hypothesis (``pip install 'curate[test]'``); nothing else in curate_world imports this module.
"""

from __future__ import annotations

from hypothesis import strategies as st

from curate_world.scene import Scene, SceneObject, entity_logo, sorted_objects
from curate_world.vocab import BACKGROUNDS, COLORS, ENTITIES, POSITIONS, SHAPES, SIZES, TEXTURES


@st.composite
def scenes(draw: st.DrawFn, max_objects: int = 3) -> Scene:
    count = draw(st.integers(1, max_objects))
    positions = draw(st.permutations(list(POSITIONS)))[:count]
    with_logo = draw(st.booleans())
    objects = []
    for index, position in enumerate(positions):
        if index == 0 and with_logo:
            objects.append(
                entity_logo(
                    draw(st.sampled_from(ENTITIES)).name, position, draw(st.sampled_from(list(SIZES)))
                )
            )
        else:
            objects.append(
                SceneObject(
                    draw(st.sampled_from(SHAPES)),
                    draw(st.sampled_from(list(COLORS))),
                    draw(st.sampled_from(list(SIZES))),
                    position,
                )
            )
    return Scene(
        sorted_objects(objects),
        draw(st.sampled_from(list(BACKGROUNDS))),
        draw(st.sampled_from(list(TEXTURES))),
    )


seeds = st.integers(0, 2**32 - 1)
