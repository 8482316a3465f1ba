"""Minimal-pair families → WebDataset shards, so open_clip_train's in-batch negatives are hard ones.

In-batch contrastive training teaches a CLIP what tells the batch's images apart, and in a batch
of random scenes colour alone does that: a model trained on random scenes scores an alt-text with
one wrong colour, shape or count almost as high as a true one. So each training image here comes
with siblings: the same scene with one thing changed (an object's colour or shape, one object
more or fewer of a kind, the logo of another entity), each rendered and captioned on its own.
Siblings are written next to each other in the shards; open_clip_train's sample shuffle buffer
(5,000 samples) spreads them over a few thousand samples, so a batch of a few hundred holds, on
average, some of every image's siblings: texts that are true of the sibling and wrong about
exactly one attribute of the image. Nothing about open_clip_train changes: it reads jpg + txt
samples like any other.

A small share of samples are page furniture, as on the web: a background with nothing on it,
captioned with boilerplate ("Image 3 of 12", "click to enlarge") or nothing. As in-batch
negatives of every real image, they teach the model that junk text matches no scene.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

FURNITURE_SHARE = 0.03  # of samples: an empty background captioned with boilerplate or nothing
# Of images, those rescaled (x0.75-1.5) and recompressed (JPEG 55-95) as the world's web copies
# are, so the model sees the sizes and qualities it will score.
WEB_COPY_SHARE = 0.5
# Which of scene_texts' five to pair with an image: mostly the description and faithful alt-texts,
# which name every object and so are false of every sibling; a partial or shapes-only text (true of
# some siblings too) a fifth of the time, so true-but-incomplete texts still score high.
TEXT_WEIGHTS = (0.4, 0.4, 0.08, 0.06, 0.06)
FULL_TEXT_WEIGHTS = (0.5, 0.5, 0.0, 0.0, 0.0)


def mutate(scene, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """``scene`` with one thing changed, the way a wrong-attribute alt-text is wrong: one object's
    colour or shape, one more or one fewer object of a kind, or another entity's logo. None when
    the draw finds nothing to change (the caller draws again)."""
    from curate_world.api import ENTITIES, POSITIONS, SHAPES, Scene
    from curate_world.api import colors_visible_on, entity_logo, sorted_objects

    objects = list(scene.objects)
    index = int(rng.integers(len(objects)))
    obj = objects[index]
    kind = ("color", "shape", "more", "fewer")[int(rng.integers(4))]
    if obj.entity is not None:
        visible = colors_visible_on(scene.background)
        others = [e for e in ENTITIES if e.name != obj.entity and e.color in visible]
        if not others:
            return None
        other = others[int(rng.integers(len(others)))]
        objects[index] = entity_logo(other.name, obj.position, obj.size)
    elif kind == "color":
        palette = [c for c in colors_visible_on(scene.background) if c != obj.color]
        objects[index] = replace(obj, color=palette[int(rng.integers(len(palette)))])
    elif kind == "shape":
        shapes = [s for s in SHAPES if s != obj.shape]
        objects[index] = replace(obj, shape=shapes[int(rng.integers(len(shapes)))])
    elif kind == "more":
        free = [p for p in POSITIONS if p not in {o.position for o in objects}]
        if not free or len(objects) >= 3:
            return None
        objects.append(replace(obj, position=free[int(rng.integers(len(free)))]))
    else:
        if len(objects) == 1:
            return None
        del objects[index]
    changed = Scene(sorted_objects(objects), scene.background, scene.texture)
    return None if changed == scene else changed


def family(rng: np.random.Generator, size: int, walk: bool = False) -> list:  # type: ignore[type-arg]
    """A random scene and up to ``size - 1`` distinct variants of it: each one change from the first
    scene, or with ``walk`` one change from any earlier member (a random walk, so a family can be
    larger than a simple scene has one-change variants, and members differ in one to a few things)."""
    from curate_world.api import sample_scene

    base = sample_scene(rng)
    members = [base]
    for _ in range(20 * size):
        if len(members) == size:
            break
        variant = mutate(members[int(rng.integers(len(members)))] if walk else base, rng)
        if variant is not None and variant not in members:
            members.append(variant)
    return members


def furniture(rng: np.random.Generator) -> tuple[bytes, str]:
    """An empty background (JPEG) and a boilerplate or empty caption."""
    from curate_world.api import BACKGROUNDS, TEXTURES, background_image, encode_image, write_boilerplate

    background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    texture = list(TEXTURES)[int(rng.integers(len(TEXTURES)))]
    image = background_image(background, texture, 64).convert("RGB")
    text = "" if rng.random() < 0.3 else write_boilerplate(rng).text
    return encode_image(image), text


def render(scene, rng: np.random.Generator) -> bytes:  # type: ignore[no-untyped-def]
    """The scene as a JPEG; half the time rescaled and recompressed as the web's copies are."""
    from curate_world.api import encode_image, render_scene, sample_variant
    from PIL import Image

    drawn = render_scene(scene, 64, rng=rng)
    quality = 90
    if rng.random() < WEB_COPY_SHARE:
        variant = sample_variant(rng)
        side, quality = round(64 * variant.scale), variant.quality or quality
        drawn = drawn.resize((side, side), Image.Resampling.BILINEAR) if side != 64 else drawn
    return encode_image(drawn, quality=quality)


def focused_text(base, member, rng: np.random.Generator) -> str | None:  # type: ignore[no-untyped-def]
    """A partial text naming only an object ``member`` has and ``base`` lacks (what its mutation
    recoloured, reshaped or added): true of the member, and false of the base and of siblings
    that changed something else, so unlike a random partial text it is no false negative among
    them. None when the member only lost an object."""
    from curate_world.api import Scene, write_faithful

    new = [obj for obj in member.objects if obj not in base.objects]
    if not new:
        return None
    obj = new[int(rng.integers(len(new)))]
    return write_faithful(Scene((obj,), member.background, member.texture), rng,
                          name_entity=obj.entity is not None and bool(rng.random() < 0.85)).text


def samples(families: int, size: int, seed: int, walk: bool = False, full_texts: bool = False,
            singles: float = 0.0, focused: float = 0.0) -> Iterator[tuple[str, bytes, str]]:
    """(key, jpeg, text) for every member of every family, siblings consecutive.

    ``full_texts``: a family member's text is always one that names every object (its description
    or a faithful alt-text). A partial text ("yellow shapes") is true of most of its siblings, so
    among them it is a false negative and training pushes every partial text's score down.
    ``singles``: after each family, that many random unrelated scenes per member, with any kind of
    true text (partial ones included): they keep true-but-incomplete texts scoring high.
    ``focused``: the share of variants (every member but the first) whose text is a partial one
    naming only what the variant changed (:func:`focused_text`).
    """
    from curate_world.api import sample_scene

    from curate_clip.training.data import scene_texts

    weights = FULL_TEXT_WEIGHTS if full_texts else TEXT_WEIGHTS
    for number in range(families):
        rng = np.random.default_rng([seed, number])
        members = family(rng, size, walk)
        for member, scene in enumerate(members):
            image = render(scene, rng)
            text = scene_texts(scene, 5, rng)[int(rng.choice(5, p=weights))]
            if member and focused and rng.random() < focused:
                text = focused_text(members[0], scene, rng) or text
            yield f"{number:07d}_{member:03d}", image, text
        if rng.random() < FURNITURE_SHARE * size:
            image, text = furniture(rng)
            yield f"{number:07d}_fu", image, text
        for single in range(int(rng.poisson(singles * len(members))) if singles else 0):
            scene = sample_scene(rng)
            image = render(scene, rng)
            yield f"{number:07d}_s{single:03d}", image, scene_texts(scene, 5, rng)[int(rng.integers(5))]


def write_family_shards(out_dir: Path, *, families: int, size: int = 8, seed: int = 0, walk: bool = False,
                        full_texts: bool = False, singles: float = 0.0, focused: float = 0.0,
                        per_shard: int = 4000) -> tuple[str, int]:
    """Write the shards; return (the brace pattern open_clip_train takes, number of samples)."""
    from curate_clip.training.data import write_sample_shards

    return write_sample_shards(out_dir, samples(families, size, seed, walk, full_texts, singles, focused), "family",
                               per_shard)
