"""Small real-world image files the tidy world never makes, written into a folder shard
(``<key>.<ext>``, read through curate.images like the download step's store): what each step that
looks at pixels must see the same way (curate.images.decode_rgb)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED, BLUE, GREY = (255, 0, 0), (0, 0, 255), (90, 90, 90)


def _encode(image: Image.Image, form: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, form, **options)
    return buffer.getvalue()


def transparent_png() -> bytes:
    """16 x 8: the left half fully transparent over black RGB, the right half opaque grey."""
    rgba = np.zeros((8, 16, 4), np.uint8)
    rgba[:, 8:] = (*GREY, 255)
    return _encode(Image.fromarray(rgba, "RGBA"), "PNG")


def rotated_jpeg() -> bytes:
    """Stored 32 x 16 with a red top-left quarter, EXIF orientation 6: shown 16 x 32, red top-right."""
    image = Image.new("RGB", (32, 16), BLUE)
    image.paste(RED, (0, 0, 16, 8))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(image, "JPEG", quality=95, exif=exif.tobytes())


def plain_jpeg() -> bytes:
    return _encode(Image.new("RGB", (16, 16), GREY), "JPEG", quality=95)


def bomb_png(side: int = 60_000) -> bytes:
    """A PNG header declaring side x side pixels (Pillow refuses it on open) and one row of data."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * (side + 1))) + chunk(b"IEND", b""))


def truncated_png() -> bytes:
    whole = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "PNG")
    return whole[: len(whole) // 2]


FILES = {"transparent.png": transparent_png, "rotated.jpg": rotated_jpeg, "plain.jpg": plain_jpeg,
         "bomb.png": bomb_png, "truncated.png": truncated_png,
         "html.jpg": lambda: b"<!DOCTYPE html><html><body>404 Not Found</body></html>"}


def write_odd_images(folder: Path) -> dict[str, dict[str, str]]:
    """The files above in ``folder``; each one's image reference ``{shard, key}`` by key."""
    folder.mkdir(parents=True, exist_ok=True)
    refs = {}
    for name, make in FILES.items():
        (folder / name).write_bytes(make())
        key = name.split(".")[0]
        refs[key] = {"shard": str(folder), "key": key}
    return refs
