"""Thumbnails: the image a row points at (``image = {shard, key}``, read through
:mod:`curate.images`), shrunk to a small JPEG data URI. Anything missing or unreadable gives
``None``; the report shows a placeholder, it never fails on an image.

A run directory may come from someone else, and its rows name the image files: an absolute
shard, ``..`` or a link would put any picture on this computer into a page you may share. So
images are read only from inside the page's folders (``image_dirs``: the run directory, and the
folders the user allowed with ``curate report --read-from``), as the steps' rows are
(:class:`curate_report.rundata.RunData`); the page says what it left out and how to allow it
(:mod:`curate_report.leftout`).
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

THUMBNAIL_PX = 96


def image_dirs(run_dir: Path, allowed: Iterable[str | Path] = ()) -> tuple[Path, ...]:
    """The folders a report of ``run_dir`` reads images and step rows from: the run directory and
    ``allowed`` (``--read-from``), links resolved."""
    from curate.runfiles import real_folders

    return real_folders([run_dir, *allowed])


def thumbnail(ref: Any, store_dir: Path | None, within: Iterable[str | Path], size: int = THUMBNAIL_PX) -> str | None:
    """A JPEG data URI of the image ``ref`` points at, at most ``size`` pixels on its longer side;
    ``None`` for a row without an image, a shard or key that is gone (from the run's store too:
    a page shows what is there; the steps that read images fail on it), or bytes that do not
    decode. An image outside the folders ``within`` raises :class:`curate.images.ImageOutside`
    (the page counts those) and is not read."""
    from curate.images import ImageGone, ImageOutside, read_image_bytes

    try:
        data = read_image_bytes(ref, store_dir, within=within)
    except ImageOutside:
        raise
    except (ImageGone, OSError, LookupError, TypeError, ValueError):
        return None
    return jpeg_thumbnail(data, size) if data is not None else None


def jpeg_thumbnail(data: bytes, size: int = THUMBNAIL_PX, quality: int = 72) -> str | None:
    try:
        from PIL import Image
    except ImportError:
        return None
    from curate.images import as_shown

    try:
        with warnings.catch_warnings():
            # a huge web image is not a reason to stop; Pillow still refuses truly absurd ones
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                opened.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
                picture = as_shown(opened)  # what every step saw: upright, transparency on white, 8-bit
                picture.thumbnail((size, size))
                # inside: an RGB picture is the opened image itself, which closing it leaves unusable
                # (every plain JPEG had no thumbnail)
                buffer = io.BytesIO()
                picture.save(buffer, format="JPEG", quality=quality, optimize=True)
    except Exception:  # noqa: BLE001 - corrupt, truncated or exotic files: no thumbnail, not a broken report
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
