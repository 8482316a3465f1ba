"""Training data for the world copy detector, drawn fresh from the world's scene sampler.

Each training *scene* gives four images: two web copies of the scene and two web copies of a
*near variant* (the scene with one thing changed: an object's colour, shape, size or position, one
object more or fewer, the background or its texture, another entity's logo). Copies of one scene
are positives; the near variant is the hard negative that a CLIP confuses with it; the other
scenes of the batch are easy negatives. A *web copy* is what the world does to a planted
duplicate (``curate_world.duplicates``: objects jittered by up to 1.5 px, rescaled ×0.75-1.5,
JPEG 55-95), followed by what ``download`` and ``copy_embed`` do to it (resize to 64 px,
re-encode, resize back).
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np

CHANGES = ("color", "shape", "size", "position", "more", "fewer", "background", "texture")
IMAGE_SIZE = 64


def near_variant(scene, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """``scene`` with one thing changed; None when the draw finds nothing to change."""
    from curate_world.api import BACKGROUNDS, ENTITIES, POSITIONS, SHAPES, SIZES, TEXTURES, Scene
    from curate_world.api import colors_visible_on, entity_logo, sorted_objects

    objects = list(scene.objects)
    index = int(rng.integers(len(objects)))
    obj = objects[index]
    change = CHANGES[int(rng.integers(len(CHANGES)))]
    background, texture = scene.background, scene.texture
    free = [p for p in POSITIONS if p not in {o.position for o in objects}]
    if change == "background":
        options = [b for b in BACKGROUNDS if b != background
                   and all(o.color in colors_visible_on(b) for o in objects)]
        if not options:
            return None
        background = options[int(rng.integers(len(options)))]
    elif change == "texture":
        texture = [t for t in TEXTURES if t != texture][int(rng.integers(len(TEXTURES) - 1))]
    elif change == "position":
        if not free:
            return None
        objects[index] = replace(obj, position=free[int(rng.integers(len(free)))])
    elif change == "size":
        sizes = [s for s in SIZES if s != obj.size]
        objects[index] = replace(obj, size=sizes[int(rng.integers(len(sizes)))])
    elif change == "more":
        if not free or len(objects) >= 3:
            return None
        # the copy of a logo is a plain object: a scene holds at most one entity
        objects.append(replace(obj, position=free[int(rng.integers(len(free)))], entity=None))
    elif change == "fewer":
        if len(objects) == 1:
            return None
        del objects[index]
    elif obj.entity is not None:
        visible = colors_visible_on(background)
        others = [e for e in ENTITIES if e.name != obj.entity and e.color in visible]
        if not others:
            return None
        objects[index] = entity_logo(others[int(rng.integers(len(others)))].name, obj.position, obj.size)
    elif change == "color":
        palette = [c for c in colors_visible_on(background) if c != obj.color]
        objects[index] = replace(obj, color=palette[int(rng.integers(len(palette)))])
    else:
        shapes = [s for s in SHAPES if s != obj.shape]
        objects[index] = replace(obj, shape=shapes[int(rng.integers(len(shapes)))])
    try:
        changed = Scene(sorted_objects(objects), background, texture)
    except ValueError:
        return None
    return None if changed == scene else changed


def web_copy(scene, rng: np.random.Generator) -> np.ndarray:  # type: ignore[no-untyped-def]
    """One copy of ``scene`` as the pipeline sees it: (64, 64, 3) uint8."""
    from PIL import Image

    from curate_world.api import DUP_JITTER, encode_image, render_scene, sample_variant

    planted = rng.random() < 0.7  # else a singleton's rendering: jitter 1 px, default size and quality
    variant = sample_variant(rng) if planted else None
    image = render_scene(scene, IMAGE_SIZE, rng, DUP_JITTER if planted else 1.0)
    side = round(IMAGE_SIZE * variant.scale) if variant else IMAGE_SIZE
    if side != IMAGE_SIZE:
        image = image.resize((side, side), Image.Resampling.BILINEAR)
    image = Image.open(io.BytesIO(encode_image(image, quality=variant.quality if variant else 90)))
    if side > IMAGE_SIZE:  # download shrinks what is bigger than its image_size and re-encodes it
        image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
        image = Image.open(io.BytesIO(encode_image(image, quality=95)))
    return np.asarray(image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR))


def batch(rng: np.random.Generator, scenes: int) -> tuple[np.ndarray, np.ndarray]:
    """``4 * scenes`` images (N, 64, 64, 3) uint8 and their copy-group labels (N,): images with
    equal labels are copies of one scene; consecutive label pairs are near variants."""
    from curate_world.api import sample_scene

    images, labels = [], []
    for index in range(scenes):
        scene = sample_scene(rng)
        variant = None
        while variant is None:
            variant = near_variant(scene, rng)
        for label, member in ((2 * index, scene), (2 * index + 1, variant)):
            for _ in range(2):
                images.append(web_copy(member, rng))
                labels.append(label)
    return np.stack(images), np.asarray(labels)
