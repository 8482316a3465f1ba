"""curate.jpeg: a JPEG's EXIF orientation and its marker segments, read without decoding."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from curate.jpeg import MARKER_STEPS, MarkersPastLimit, jpeg_orientation, segments


def _jpeg(orientation: int | None) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.new("RGB", (6, 4), (200, 10, 10)).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_orientation_read_from_exif(orientation: int) -> None:
    assert jpeg_orientation(_jpeg(orientation)) == orientation


def test_no_exif_no_jpeg_is_upright() -> None:
    assert jpeg_orientation(_jpeg(None)) == 1
    assert jpeg_orientation(b"\x89PNG\r\n\x1a\n") == 1


def test_walk_is_bounded() -> None:
    fill = b"\xff\xd8" + b"\xff" * (MARKER_STEPS + 10)
    with pytest.raises(MarkersPastLimit):
        list(segments(fill))
    assert jpeg_orientation(fill) == 1


def test_segments_end_at_the_scan() -> None:
    markers = [marker for marker, _, _ in segments(_jpeg(6))]
    assert markers and 0xDA not in markers and 0xE1 in markers


@given(st.binary(max_size=300))
def test_any_bytes_give_an_orientation(tail: bytes) -> None:
    assert jpeg_orientation(b"\xff\xd8" + tail) in range(1, 9)
