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


def pixel_gif() -> bytes:
    """A 1 x 1 transparent GIF: the web's tracking pixel (a page counts its views with it)."""
    return _encode(Image.new("P", (1, 1), 0), "GIF", transparency=0)


def strip_png(width: int = 20_000, height: int = 10) -> bytes:
    """A 20000 x 10 strip (a spacer or a rule drawn as an image), grey."""
    return _encode(Image.new("L", (width, height), GREY[0]), "PNG")


def icon_png() -> bytes:
    """A 16 x 16 icon (a favicon, a bullet, a social button)."""
    return _encode(Image.new("RGB", (16, 16), RED), "PNG")


def banner_jpeg() -> bytes:
    """A 728 x 90 leaderboard ad banner: wide (8.1 : 1) but a picture."""
    return _encode(Image.new("RGB", (728, 90), BLUE), "JPEG", quality=90)


def turned_strip_jpeg() -> bytes:
    """Stored 400 x 24 with EXIF orientation 6: shown 24 x 400, a strip either way (16.7 : 1)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(Image.new("RGB", (400, 24), GREY), "JPEG", quality=90, exif=exif.tobytes())


def truncated_png() -> bytes:
    whole = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "PNG")
    return whole[: len(whole) // 2]


FILES = {"transparent.png": transparent_png, "rotated.jpg": rotated_jpeg, "plain.jpg": plain_jpeg,
         "bomb.png": bomb_png, "truncated.png": truncated_png,
         "html.jpg": lambda: b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
         "pixel.gif": pixel_gif, "strip.png": strip_png, "icon.png": icon_png, "banner.jpg": banner_jpeg,
         "turned_strip.jpg": turned_strip_jpeg, "empty.png": lambda: b""}


def write_odd_images(folder: Path) -> dict[str, dict[str, str]]:
    """The files above in ``folder``; each one's image reference ``{shard, key}`` by key."""
    folder.mkdir(parents=True, exist_ok=True)
    refs = {}
    for name, make in FILES.items():
        (folder / name).write_bytes(make())
        key = name.split(".")[0]
        refs[key] = {"shard": str(folder), "key": key}
    return refs
