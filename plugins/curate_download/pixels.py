"""Images decoded as a browser shows them, where img2dataset's decoder does not.

img2dataset decodes with ``cv2.imdecode(buffer, IMREAD_UNCHANGED)``, which keeps the file's bit
depth and ignores its EXIF orientation. Two kinds of real web images came out wrong, as
``success``, with nothing to say so:

- **16-bit samples** (16-bit PNGs, 12-bit JPEGs, 16-bit TIFFs) reach ``cv2.imencode(".jpg")``
  as uint16, which it saturates to 8 bits: everything above 255 of 65535 is white. A 16-bit
  RGBA PNG was white throughout, since the resizer's alpha blend assumes 8-bit alpha. With
  ``encode_format: png`` the 16-bit file is stored as such, and every later step's Pillow
  ``convert("RGB")`` clips it to white in turn.
- **EXIF orientation** (a phone photo held upright is stored sideways, with a tag saying so):
  the image was stored as the sensor wrote it and the tag dropped by the re-encode, so no later
  step could put it right.

So the worker gives img2dataset's resizer a decoder (:class:`DecoderAsShown`, standing in for
its ``cv2`` module) that brings deep samples to 8 bits (the top byte: 65535 is 255) and turns a
JPEG upright as its EXIF orientation says, before the resizer blends, checks sizes and encodes.
Memory: the 8-bit copy and the upright copy are counted in ``header.ImageHeader.decode_memory``.

Standard library at import (the worker imports only that); numpy when an image is decoded, which
img2dataset has imported by then.
"""

from __future__ import annotations

from typing import Any, Literal

ORIENTATION_TAG = 0x0112
EXIF_APP = 0xE1
JPEG_SCAN = 0xDA
MARKER_STEPS = 65_536  # markers and fill bytes walked at most (as header.HEADER_READS)


def jpeg_orientation(data: Any) -> int:
    """The EXIF orientation (1–8) of a JPEG's bytes (bytes, memoryview or a uint8 array); 1 when
    it has none, or anything about it is not what EXIF says it is. Walks the markers before the
    first scan, at most :data:`MARKER_STEPS` of them, so a body costs what its header does."""
    view = memoryview(data).cast("B")
    if len(view) < 4 or view[0] != 0xFF or view[1] != 0xD8:
        return 1
    at = 2
    for _ in range(MARKER_STEPS):
        if at + 4 > len(view) or view[at] != 0xFF:
            return 1
        marker = view[at + 1]
        if marker == 0xFF:
            at += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        if marker == JPEG_SCAN:
            return 1
        length = int.from_bytes(view[at + 2:at + 4], "big")
        if length < 2:
            return 1
        if marker == EXIF_APP and bytes(view[at + 4:at + 10]) == b"Exif\x00\x00":
            return _tiff_orientation(bytes(view[at + 10:at + 2 + length]))
        at += 2 + length
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


def eight_bit(image: Any) -> Any:
    """A decoded image with 8-bit samples: uint16 by its top byte (shifted in place, so only
    the 8-bit copy is added), floats (OpenEXR, Radiance, float TIFF) as 0–1 scaled to 0–255."""
    import numpy as np

    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        np.right_shift(image, 8, out=image)
        return image.astype(np.uint8)
    if image.dtype.kind == "f":
        np.clip(image, 0.0, 1.0, out=image)
        np.multiply(image, 255.0, out=image)
        np.rint(image, out=image)
        return image.astype(np.uint8)
    return image  # signed integers: rare, left to OpenCV as before


def upright(image: Any, orientation: int) -> Any:
    """``image`` (rows, columns[, channels]) turned as EXIF ``orientation`` says a viewer shows it
    (what Pillow's ``ImageOps.exif_transpose`` does), as a contiguous array."""
    import numpy as np

    if orientation == 2:
        image = image[:, ::-1]
    elif orientation == 3:
        image = image[::-1, ::-1]
    elif orientation == 4:
        image = image[::-1]
    elif orientation == 5:
        image = image.swapaxes(0, 1)
    elif orientation == 6:
        image = np.rot90(image, -1)
    elif orientation == 7:
        image = image.swapaxes(0, 1)[::-1, ::-1]
    elif orientation == 8:
        image = np.rot90(image, 1)
    else:
        return image
    return np.ascontiguousarray(image)


IGNORE_ORIENTATION = 128  # cv2.IMREAD_IGNORE_ORIENTATION; IMREAD_UNCHANGED (-1) ignores it too


class DecoderAsShown:
    """Stands in for the ``cv2`` module in img2dataset's resizer: ``imdecode`` gives 8-bit samples,
    turned upright where a JPEG's EXIF orientation says so; everything else is OpenCV's."""

    def __init__(self, cv2: Any):
        self.opencv = cv2

    def __getattr__(self, name: str) -> Any:
        return getattr(self.opencv, name)

    def imdecode(self, buffer: Any, flags: int) -> Any:
        image = self.opencv.imdecode(buffer, flags)
        if image is None:
            return None
        image = eight_bit(image)
        if flags < 0 or flags & IGNORE_ORIENTATION:  # OpenCV applied no orientation
            image = upright(image, jpeg_orientation(buffer))
        return image


def decode_as_shown(resizer_module: Any) -> None:
    """Give img2dataset's resizer module (``img2dataset.resizer``) the decoder above, once."""
    if not isinstance(resizer_module.cv2, DecoderAsShown):
        resizer_module.cv2 = DecoderAsShown(resizer_module.cv2)
