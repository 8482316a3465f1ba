"""Thumbnails: the image a row points at (``image = {shard, key}``, read through
:mod:`curate.images`), shrunk to a small JPEG data URI. Anything missing or unreadable gives
``None``; the report shows a placeholder, it never fails on an image.

A run directory may come from someone else, and its rows name the image files: an absolute
shard, ``..`` or a link would put any picture on this computer into a page you may share. So
images are read only from inside the page's image folders (``image_dirs``: the run directory, and
the folders the user allowed with ``curate report --images-from``); the page says how many it
left out and how to allow them (:func:`left_out_section`).
"""

from __future__ import annotations

import base64
import io
import os
import shlex
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

THUMBNAIL_PX = 96
LEFT_OUT_ORDER = 5  # first on the page: the reader must see why pictures are missing
FOLDERS_SHOWN = 3


def image_dirs(run_dir: Path, allowed: Iterable[str | Path] = ()) -> tuple[Path, ...]:
    """The folders a report of ``run_dir`` reads images from: the run directory and ``allowed``
    (``--images-from``), links resolved."""
    from curate.runfiles import real_folders

    return real_folders([run_dir, *allowed])


def thumbnail(ref: Any, store_dir: Path | None, within: Iterable[str | Path], size: int = THUMBNAIL_PX) -> str | None:
    """A JPEG data URI of the image ``ref`` points at, at most ``size`` pixels on its longer side;
    ``None`` for a row without an image, a shard or key that is gone, or bytes that do not decode.
    An image outside the folders ``within`` raises :class:`curate.images.ImageOutside` (the page
    counts those) and is not read."""
    from curate.images import ImageOutside, read_image_bytes

    try:
        data = read_image_bytes(ref, store_dir, within=within)
    except ImageOutside:
        raise
    except (OSError, LookupError, TypeError, ValueError):
        return None
    return jpeg_thumbnail(data, size) if data is not None else None


def jpeg_thumbnail(data: bytes, size: int = THUMBNAIL_PX, quality: int = 72) -> str | None:
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with warnings.catch_warnings():
            # a huge web image is not a reason to stop; Pillow still refuses truly absurd ones
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                opened.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
                picture = opened.convert("RGBA") if opened.mode in ("P", "LA", "RGBA") else opened.convert("RGB")
                picture.thumbnail((size, size))
        if picture.mode == "RGBA":
            flat = Image.new("RGB", picture.size, (255, 255, 255))
            flat.paste(picture, mask=picture.getchannel("A"))
            picture = flat
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=quality, optimize=True)
    except Exception:  # noqa: BLE001 - corrupt, truncated or exotic files: no thumbnail, not a broken report
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def folders_to_allow(paths: Iterable[Path], store_dir: Path | None) -> list[Path]:
    """The folders that hold ``paths`` (refused shards or files, links resolved): the run's store
    when they are in it (a store kept outside the run, ``run.cache_dir``), else each one's folder."""
    store = Path(os.path.realpath(store_dir)) if store_dir is not None else None
    folders = set()
    for path in paths:
        if store is not None and path.is_relative_to(store):
            folders.add(store)
        else:
            folders.add(path if path.is_dir() else path.parent)
    return sorted(folders)


def left_out_message(count: int, run_dir: Path, folders: list[Path]) -> tuple[str, str]:
    """(why, the command that allows them) for a page that left ``count`` images out."""
    images = "1 image was" if count == 1 else f"{count:,} images were"
    why = (f"{images} not embedded: the run's rows name files outside its directory ({run_dir}), and a run "
           f"directory from elsewhere could otherwise put any picture on this computer into the page")
    options = " ".join(f"--images-from {shlex.quote(str(folder))}" for folder in folders[:FOLDERS_SHOWN])
    more = f" (and {len(folders) - FOLDERS_SHOWN} more folders)" if len(folders) > FOLDERS_SHOWN else ""
    return why, f"curate report {shlex.quote(str(run_dir))} {options}{more}"


def left_out_section(count: int, run_dir: Path, folders: list[Path]) -> dict[str, Any]:
    """The note at the top of a page that left images out, and the same as one warning."""
    from curate_report.html import Html, esc
    from curate_report.sections import ReportWarning

    why, command = left_out_message(count, run_dir, folders)
    warnings.warn(f"{why}; if you trust these images: {command}", ReportWarning, stacklevel=2)
    return {"title": "Images not embedded", "order": LEFT_OUT_ORDER,
            "html": Html(f"<p class='note bad'>{esc(why)}. If you trust these images, allow their folders: "
                         f"<code>{esc(command)}</code></p>")}
