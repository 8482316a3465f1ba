"""The report's thumbnails show the picture every step saw (curate.images.as_shown): a JPEG turned
by its EXIF orientation was shown sideways, as it is stored."""

from __future__ import annotations

import base64
import io

from curate_report.images import jpeg_thumbnail
from PIL import Image

from tests.odd_images import rotated_jpeg, transparent_png, truncated_png


def _thumbnail(data: bytes) -> Image.Image:
    uri = jpeg_thumbnail(data)
    assert uri is not None
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_thumbnails_are_upright_and_on_white() -> None:
    rotated = _thumbnail(rotated_jpeg())
    assert rotated.size == (16, 32) and rotated.getpixel((12, 4))[0] > 200  # was (32, 16)
    assert min(_thumbnail(transparent_png()).getpixel((2, 4))) > 245
    assert jpeg_thumbnail(truncated_png()) is None


def test_a_plain_rgb_jpeg_has_a_thumbnail() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 10)).save(buffer, "JPEG")
    assert _thumbnail(buffer.getvalue()).getpixel((5, 5))[1] > 150  # none: the closed image failed to save
