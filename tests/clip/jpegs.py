"""Photo-like JPEGs (and PNGs) written as a download shard would hold them, for the clip_score
decode tests here and in tests/gpu (no hypothesis, no conftest: a lent device runs those)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from curate_clip import device_decode

# The bound on the two paths' unit image embeddings' difference (its L2 norm bounds any cosine
# score's difference). On the CPU the paths agree exactly (measured: 0.0 over 30 photo-like JPEGs
# of 40..700 px, world CLIP and ViT-B/32: libjpeg-turbo both, and torchvision's uint8 bicubic
# matches PIL's). On CUDA nvjpeg's IDCT and the float resampler move pixels by a level or two:
# the GPU session measures that difference (benchmarks/gpu_session.py, max_score_difference)
# and tests/gpu asserts this bound.
EMBEDDING_TOLERANCE = 0.02
PIXEL_MEAN_TOLERANCE = 1.5  # mean absolute difference, in 0..255 levels


def photo(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    colours = rng.uniform(0, 255, (2, 3))
    background = (colours[0] * (x / width)[..., None] + colours[1] * (y / height)[..., None]) / 1.5
    image = Image.fromarray(background.clip(0, 255).astype("uint8"))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(4, max(5, width // 2))), int(rng.integers(4, max(5, height // 2)))
        draw.ellipse([x0, y0, x0 + w, y0 + h], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return image


def encoded(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def write(folder, files: dict[str, bytes]) -> list[dict[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    refs = []
    for key, data in files.items():
        ext = "jpg" if data[:3] == device_decode.JPEG_MAGIC else "png" if data[:4] == b"\x89PNG" else "jpg"
        (folder / f"{key}.{ext}").write_bytes(data)
        refs.append({"shard": str(folder), "key": key})
    return refs
