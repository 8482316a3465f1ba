"""curate.images.decode_rgb: the one picture every step sees, as a browser shows the file.

Each step decoded on its own (``Image.open(...).convert("RGB")``): transparent pixels showed
whatever RGB lay under them (black here, where the download step composites on white), a 16-bit
PNG was clipped to white, a phone photo stayed sideways, and a decompression bomb failed the
whole CLIP step instead of being a row without an image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from curate.images import BACKGROUND, decode_rgb
from curate.jpeg import jpeg_orientation, whole_jpeg
from tests.odd_images import bomb_png


def _encode(image: Image.Image, form: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, form, **options)
    return buffer.getvalue()


def _half_transparent(mode: str) -> Image.Image:
    """Left half fully transparent over black, right half opaque grey 90."""
    rgba = np.zeros((8, 16, 4), np.uint8)
    rgba[:, 8:] = (90, 90, 90, 255)
    return Image.fromarray(rgba, "RGBA").convert(mode)


@pytest.mark.parametrize(("mode", "form"), [("RGBA", "PNG"), ("LA", "PNG"), ("RGBA", "WEBP"), ("P", "GIF")])
def test_transparency_is_composited_on_white_as_the_download_step_does(mode: str, form: str) -> None:
    image = _half_transparent(mode)
    options = {"transparency": image.getpixel((0, 0))} if mode == "P" else {}
    if form == "WEBP":
        options["lossless"] = True
    decoded = decode_rgb(_encode(image, form, **options))
    assert decoded is not None and decoded.mode == "RGB" and decoded.size == (16, 8)
    assert decoded.getpixel((2, 4)) == BACKGROUND == (255, 255, 255)  # was (0, 0, 0)
    assert decoded.getpixel((12, 4)) == (90, 90, 90)


def test_16_bit_grey_is_brought_to_8_bits_not_clipped_to_white() -> None:
    ramp = np.tile(np.array([0, 0x4000, 0x8000, 0xFFFF], dtype="<u2"), (4, 1))
    decoded = decode_rgb(_encode(Image.frombytes("I;16", (4, 4), ramp.tobytes()), "PNG"))
    assert decoded is not None
    assert [decoded.getpixel((x, 1)) for x in range(4)] == [(0,) * 3, (64,) * 3, (128,) * 3, (255,) * 3]


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_an_exif_orientation_is_followed(orientation: int) -> None:
    stored = Image.new("RGB", (32, 16), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 16, 8))  # red top-left quarter
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    assert jpeg_orientation(data) == orientation and whole_jpeg(data)
    decoded = decode_rgb(data)
    assert decoded is not None
    red = {3: (24, 12), 6: (12, 8), 8: (4, 24)}[orientation]  # where the red quarter is shown
    assert decoded.size == ((32, 16) if orientation == 3 else (16, 32))
    pixel = decoded.getpixel(red)
    assert pixel[0] > 200 and pixel[2] < 60, pixel


def test_cmyk_keeps_its_colours() -> None:
    decoded = decode_rgb(_encode(Image.new("RGB", (8, 8), (200, 30, 30)).convert("CMYK"), "JPEG", quality=95))
    assert decoded is not None
    assert max(abs(a - b) for a, b in zip(decoded.getpixel((4, 4)), (200, 30, 30), strict=True)) <= 8


def test_what_is_no_image_is_none_never_an_exception() -> None:
    jpeg = _encode(Image.new("RGB", (64, 48), (10, 120, 30)), "JPEG")
    png = _encode(Image.new("RGB", (64, 48), (10, 120, 30)), "PNG")
    for data in (b"", b"<!DOCTYPE html><html>404</html>", jpeg[: len(jpeg) // 2], png[: len(png) // 2],
                 b"<svg xmlns='http://www.w3.org/2000/svg'/>", bomb_png(60_000)):
        assert decode_rgb(data) is None
    assert not whole_jpeg(jpeg[: len(jpeg) // 2]) and whole_jpeg(jpeg)
