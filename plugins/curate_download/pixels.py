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

And a body that does not decode at all was ``Image decoding error``, whether an HTML error page,
an SVG, a favicon or a truncated JPEG: the message now says which it looks like
(:func:`undecodable`), so a user can tell their URLs point at error pages.

So the worker gives img2dataset's resizer a decoder (:class:`DecoderAsShown`, standing in for
its ``cv2`` module) that brings deep samples to 8 bits (the top byte: 65535 is 255) and turns a
JPEG upright as its EXIF orientation says, before the resizer blends, checks sizes and encodes.
Memory: the 8-bit copy and the upright copy are counted in ``header.ImageHeader.decode_memory``.

Standard library and ``curate.jpeg`` (standard library too, shared with the steps that decode
later) at import; numpy when an image is decoded, which img2dataset has imported by then.
"""

from __future__ import annotations

from typing import Any

from curate.jpeg import jpeg_orientation

# How the stored pixels are decoded, recorded in each image store record the step writes
# (imagestore.py): 2 is this module's decoder. Records without it (written before curate recorded
# it, 2026-12-08) may come from img2dataset's own decoding: 16-bit images white, EXIF-rotated
# JPEGs sideways. Bump it when the pixels stored for the same params change, so that the records
# written before are reported (download's ``image_store_old_records``), not reused without a word.
DECODER = 2

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


UNDECODABLE = "Image decoding error"  # img2dataset's message, kept at the start of ours
# What a body that is no image OpenCV decodes often is, by its first bytes (after white space).
KINDS = ((b"<!doctype html", "an HTML page (an error, login or consent page served at the image's URL)"),
         (b"<html", "an HTML page (an error, login or consent page served at the image's URL)"),
         (b"<svg", "an SVG drawing (vector images are not decoded)"),
         (b"<?xml", "XML (an SVG drawing, or an error document)"),
         (b"{", "JSON (an API's reply, not an image)"),
         (b"\x00\x00\x01\x00", "an ICO icon (a favicon; OpenCV does not decode ICO)"))
ISO_BRANDS = {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"}  # HEIF: OpenCV has no decoder


def undecodable(buffer: Any) -> str:
    """The message for a body OpenCV could not decode, saying what it looks like when its first
    bytes say so (an HTML page at an image URL is the usual case), else only that it did not
    decode (a truncated or corrupt image, or a format OpenCV lacks)."""
    start = bytes(memoryview(buffer).cast("B")[:64])
    head = start.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    for magic, kind in KINDS:
        if head.startswith(magic):
            return f"{UNDECODABLE}: the body is {kind}"
    if start[4:8] == b"ftyp" and start[8:12] in ISO_BRANDS:
        return f"{UNDECODABLE}: the body is HEIF/HEIC (OpenCV has no decoder for it)"
    return f"{UNDECODABLE}: not an image OpenCV decodes (truncated, corrupt, or a format it lacks)"


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
        if image is None:  # img2dataset said "Image decoding error" and nothing more
            raise ValueError(undecodable(buffer))
        image = eight_bit(image)
        if flags < 0 or flags & IGNORE_ORIENTATION:  # OpenCV applied no orientation
            image = upright(image, jpeg_orientation(buffer))
        return image


def decode_as_shown(resizer_module: Any) -> None:
    """Give img2dataset's resizer module (``img2dataset.resizer``) the decoder above, once."""
    if not isinstance(resizer_module.cv2, DecoderAsShown):
        resizer_module.cv2 = DecoderAsShown(resizer_module.cv2)
