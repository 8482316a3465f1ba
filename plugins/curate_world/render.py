"""Draw a scene with Pillow and encode it. Cheap on purpose: thousands of images per second.

Shapes are drawn at ``SUPERSAMPLE`` times the final size and box-filtered down, which gives
anti-aliased edges like a real photo's without any per-pixel Python.
"""

from __future__ import annotations

import io
import math
from functools import cache
from typing import TYPE_CHECKING

from curate_world.scene import Scene, SceneObject
from curate_world.vocab import BACKGROUNDS, COLORS, ENTITY_BY_NAME, POSITIONS, SIZES, texture_rgb

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

SUPERSAMPLE = 2
Point = tuple[float, float]


@cache
def unit_outline(shape: str) -> tuple[Point, ...]:
    """The shape as a polygon around (0, 0) with radius about 1, y pointing down. Circles are
    polygons too (48 sides), so every shape goes through the same code path."""

    def ring(count: int, radius: float = 1.0, start: float = -90.0) -> list[Point]:
        return [
            (
                radius * math.cos(math.radians(start + 360 * i / count)),
                radius * math.sin(math.radians(start + 360 * i / count)),
            )
            for i in range(count)
        ]

    if shape == "circle":
        return tuple(ring(48))
    if shape == "square":
        return ((-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8))
    if shape == "triangle":  # equilateral; lowered a little so its visual center is the object's center
        return tuple((1.15 * x, 1.15 * y + 0.15) for x, y in ring(3))
    if shape == "star":
        outer, inner = ring(5, 1.1), ring(5, 0.48, start=-54.0)
        return tuple(p for pair in zip(outer, inner, strict=True) for p in pair)
    if shape == "hexagon":
        return tuple(ring(6, start=0.0))
    if shape == "cross":
        a, b = 0.34, 0.95
        return (
            (-a, -b),
            (a, -b),
            (a, -a),
            (b, -a),
            (b, a),
            (a, a),
            (a, b),
            (-a, b),
            (-a, a),
            (-b, a),
            (-b, -a),
            (-a, -a),
        )
    if shape == "diamond":
        return ((0.0, -1.05), (0.75, 0.0), (0.0, 1.05), (-0.75, 0.0))
    if shape == "heart":
        points = []
        for i in range(40):
            t = 2 * math.pi * i / 40
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            points.append((x / 16.5, -y / 16.5 - 0.05))
        return tuple(points)
    raise ValueError(f"no outline for shape {shape!r}; add one to curate_world.render.unit_outline")


@cache
def background_image(background: str, texture: str, side: int) -> Image.Image:
    """The background at canvas size; cached because a world reuses a few dozen of them."""
    import numpy as np
    from PIL import Image

    base = np.array(BACKGROUNDS[background], dtype=np.float32)
    second = np.array(texture_rgb(background), dtype=np.float32)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    period = side / 6
    if texture == "plain":
        weight = np.zeros((side, side), dtype=np.float32)
    elif texture == "stripes":
        weight = (((x + y) // (period / 2)) % 2).astype(np.float32)
    elif texture == "dots":
        dx, dy = (x % period) - period / 2, (y % period) - period / 2
        weight = (dx * dx + dy * dy <= (period / 4) ** 2).astype(np.float32)
    elif texture == "gradient":
        weight = y / max(side - 1, 1)
    else:
        raise ValueError(f"unknown texture {texture!r}")
    pixels = base + weight[..., None] * (second - base)
    return Image.fromarray(np.round(pixels).astype(np.uint8), "RGB")


def _polygon(shape: str, center: Point, radius: float, scale: float = 1.0) -> list[Point]:
    cx, cy = center
    return [(cx + x * radius * scale, cy + y * radius * scale) for x, y in unit_outline(shape)]


def _draw_marker(canvas: Image.Image, obj: SceneObject, center: Point, radius: float) -> None:
    """The entity's marker, clipped to a shrunken copy of the logo so it never spills outside."""
    from PIL import Image, ImageChops, ImageDraw

    entity = ENTITY_BY_NAME[obj.entity]  # type: ignore[index]
    clip = Image.new("L", canvas.size, 0)
    ImageDraw.Draw(clip).polygon(_polygon(obj.shape, center, radius, 0.8), fill=255)
    pattern = Image.new("L", canvas.size, 0)
    draw = ImageDraw.Draw(pattern)
    cx, cy = center
    width = max(1, round(0.18 * radius))
    if entity.marker == "stripes":
        for offset in (-0.4, 0.0, 0.4):
            y = cy + offset * radius
            draw.rectangle((cx - radius, y - width / 2, cx + radius, y + width / 2), fill=255)
    elif entity.marker == "dot":
        r = 0.34 * radius
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif entity.marker == "ring":
        r = 0.45 * radius
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=255, width=width)
    elif entity.marker == "bar":
        draw.rectangle((cx - width / 2 - 1, cy - radius, cx + width / 2 + 1, cy + radius), fill=255)
    elif entity.marker == "x":
        r = 0.5 * radius
        draw.line((cx - r, cy - r, cx + r, cy + r), fill=255, width=width)
        draw.line((cx - r, cy + r, cx + r, cy - r), fill=255, width=width)
    canvas.paste(COLORS[entity.marker_color], mask=ImageChops.multiply(clip, pattern))


def render_scene(
    scene: Scene, size: int = 64, rng: np.random.Generator | None = None, jitter: float = 1.0
) -> Image.Image:
    """Draw ``scene`` as a ``size``×``size`` RGB image.

    With ``rng``, each object's center moves by up to ``jitter`` final pixels, so two renderings of
    one scene are near-duplicates rather than copies. Logos are drawn last, so their marker is never
    covered by a neighbour.
    """
    from PIL import ImageDraw

    side = size * SUPERSAMPLE
    canvas = background_image(scene.background, scene.texture, side).copy()
    draw = ImageDraw.Draw(canvas)
    for obj in sorted(scene.objects, key=lambda o: o.entity is not None):
        fx, fy = POSITIONS[obj.position]
        dx, dy = (rng.uniform(-jitter, jitter, size=2) * SUPERSAMPLE) if rng is not None else (0.0, 0.0)
        center = (fx * side + dx, fy * side + dy)
        radius = SIZES[obj.size] * side
        draw.polygon(_polygon(obj.shape, center, radius), fill=COLORS[obj.color])
        if obj.entity is not None:
            _draw_marker(canvas, obj, center, radius)
    return canvas.reduce(SUPERSAMPLE)


def encode_image(image: Image.Image, image_format: str = "jpeg", quality: int = 90) -> bytes:
    """Encode with fixed settings (no metadata, no timestamps), so equal pixels give equal bytes.
    JPEGs keep full chroma resolution: at 64 px, 4:2:0 subsampling smears small objects' colors."""
    buffer = io.BytesIO()
    if image_format == "jpeg":
        image.save(buffer, "JPEG", quality=quality, subsampling=0, optimize=False, progressive=False)
    elif image_format == "png":
        image.save(buffer, "PNG", compress_level=6)
    else:
        raise ValueError(f"unknown image format {image_format!r}: use 'jpeg' or 'png'")
    return buffer.getvalue()
