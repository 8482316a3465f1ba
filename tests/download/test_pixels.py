"""Images stored as a browser shows them: 16-bit samples brought to 8 bits (they were stored
white), JPEGs turned upright as their EXIF orientation says (they were stored sideways, the tag
dropped). ``curate_download/pixels.py`` gives img2dataset's resizer that decoder; that the step's
worker processes use it, test_hostile's healthy run checks (``hostile.check_as_shown``)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from curate_download.header import read_header
from curate_download.pixels import DecoderAsShown
from PIL import Image, ImageOps

from curate.jpeg import jpeg_orientation
from tests.download.hostile import deep16_png, rotated_jpeg

cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def resizer() -> Iterator[Any]:
    """img2dataset's resizer with the worker's decoder, storing what it is given unresized."""
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        patch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")
        warnings.simplefilter("ignore", DeprecationWarning)  # img2dataset imports imghdr
        module = pytest.importorskip("img2dataset.resizer")
        patch.setattr(module, "cv2", DecoderAsShown(module.cv2))
        yield module.Resizer(image_size=64, resize_mode="no", resize_only_if_bigger=False)


def _stored(resizer: Any, data: bytes) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # albumentations' deprecations
        encoded, *_, error = resizer(io.BytesIO(data))
    assert error is None
    return np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB")).astype(int)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpegs_are_turned_as_pillow_turns_them(resizer: Any, orientation: int) -> None:
    data = rotated_jpeg(orientation)
    assert jpeg_orientation(data) == orientation
    assert read_header(data).rotated is (orientation != 1)  # type: ignore[union-attr]
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")).astype(int)
    stored = _stored(resizer, data)
    assert stored.shape == shown.shape
    assert np.abs(stored - shown).mean() < 10  # the re-encode's rounding at red/blue edges; turned: ~100


@pytest.mark.parametrize("colour", [0, 6])
def test_16_bit_samples_are_stored_at_8_bits_not_white(resizer: Any, colour: int) -> None:
    stored = _stored(resizer, deep16_png(colour))
    assert stored.shape == (12, 16, 3)
    assert np.abs(stored - 128).max() <= 2  # 0x8080 is 128; it was 255 (saturated, or blended as 8-bit alpha)


def test_orientation_is_read_only_from_a_well_formed_exif_segment() -> None:
    rotated = rotated_jpeg(6)
    assert jpeg_orientation(rotated[:20]) == 1  # cut before the tag
    assert jpeg_orientation(b"") == jpeg_orientation(b"\xff\xd8") == jpeg_orientation(b"\x89PNG") == 1
    assert jpeg_orientation(rotated.replace(b"Exif\x00\x00", b"Exig\x00\x00", 1)) == 1
    no_exif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(no_exif, "JPEG")
    assert jpeg_orientation(no_exif.getvalue()) == 1


@pytest.mark.parametrize(("body", "says"), [
    (b"<!DOCTYPE html><html><body>404</body></html>", "the body is an HTML page"),
    (b"\n  <html><head>", "the body is an HTML page"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "the body is an SVG drawing"),
    (b"\x00\x00\x01\x00\x01\x00\x10\x10" + bytes(64), "the body is an ICO icon"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "the body is HEIF/HEIC"),
    (rotated_jpeg(1)[:200], "not an image OpenCV decodes (truncated"),
])
def test_a_body_that_does_not_decode_says_what_it_looks_like(resizer: Any, body: bytes, says: str) -> None:
    """It was ``Image decoding error`` whatever the body was; the start of the message stays."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        error = resizer(io.BytesIO(body))[-1]
    assert error.startswith("Image decoding error: ") and says in error, error
