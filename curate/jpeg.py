"""What a JPEG's bytes say without decoding them: whether the file is whole, and its EXIF
orientation (a phone photo held upright is stored sideways with a tag saying so, which browsers
follow). Standard library only: the download step's worker processes import it too.

Both read only the bytes before the first scan (or the last few), at most :data:`MARKER_STEPS`
markers, so a hostile body costs what an ordinary header does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"
ORIENTATION_TAG = 0x0112
EXIF_APP = 0xE1
JPEG_SCAN = 0xDA
MARKER_STEPS = 65_536  # markers and fill bytes walked at most


def whole_jpeg(data: bytes) -> bool:
    """A JPEG that starts and ends with its markers. Decoders differ on a truncated file (nvjpeg
    decodes the missing rows grey, Pillow refuses it): anything else is decoded the careful way."""
    return data[:3] == JPEG_MAGIC and data.rstrip(b"\x00\r\n ")[-2:] == JPEG_END


class MarkersPastLimit(Exception):
    """More markers and fill bytes before a JPEG's first scan than the walk was allowed."""


def segments(data: Any, steps: int = MARKER_STEPS) -> Iterator[tuple[int, int, int]]:
    """Each marker segment of a JPEG's bytes (bytes, memoryview or a uint8 array) before its first
    scan, as (marker, offset of its 0xFF, length): the walk ends at the scan, at the end of the
    bytes or at bytes that are no marker, and raises :class:`MarkersPastLimit` past ``steps``
    markers and fill bytes (32 MiB of fill bytes are 32 million steps)."""
    view = memoryview(data).cast("B")
    at = 2
    for _ in range(steps):
        if at + 4 > len(view) or view[at] != 0xFF:
            return
        marker = view[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        if marker == JPEG_SCAN:
            return
        length = int.from_bytes(view[at + 2:at + 4], "big")
        if length < 2:
            return
        yield marker, at, length
        at += 2 + length
    raise MarkersPastLimit(steps)


def jpeg_orientation(data: Any) -> int:
    """The EXIF orientation (1–8) of a JPEG's bytes (bytes, memoryview or a uint8 array); 1 when
    it has none, is no JPEG, or anything about the tag is not what EXIF says it is."""
    view = memoryview(data).cast("B")
    if len(view) < 4 or view[0] != 0xFF or view[1] != 0xD8:
        return 1
    try:
        for marker, at, length in segments(view):
            if marker == EXIF_APP and bytes(view[at + 4:at + 10]) == b"Exif\x00\x00":
                return _tiff_orientation(bytes(view[at + 10:at + 2 + length]))
    except MarkersPastLimit:
        pass
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    """Orientation from IFD0 of EXIF's TIFF structure; 1 when absent or malformed."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    order: Literal["little", "big"] = "little" if tiff[:2] == b"II" else "big"

    def number(start: int, size: int) -> int:
        return int.from_bytes(tiff[start:start + size], order)

    ifd = number(4, 4)
    if ifd + 2 > len(tiff):
        return 1
    for entry in range(ifd + 2, min(ifd + 2 + 12 * number(ifd, 2), len(tiff) - 11), 12):
        if number(entry, 2) == ORIENTATION_TAG:
            value = number(entry + 8, 2) if number(entry + 2, 2) == 3 else 1  # type 3: SHORT
            return value if 1 <= value <= 8 else 1
    return 1
