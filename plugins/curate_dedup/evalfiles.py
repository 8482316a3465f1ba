"""What an eval set on disk is, found and checked before anything is embedded (``curate validate``
runs the same checks the step runs first), and its images read within bounds.

An eval set may come with a spec from someone else. What the path is decides its form, said in
the words of :func:`curate.runfiles.not_regular` when it is none of them (a pipe was "an eval set
that holds no images"); every file read is a regular one (a pipe listed in a Parquet eval set
made the step wait forever for a writer); a column of another type than text, or a row without a
path, is an error naming it, not a ``TypeError``. An image is read only up to
:data:`MAX_IMAGE_BYTES` and decoded only when its header declares at most :data:`MAX_PIXELS`
pixels: a 20,000 × 20,000 PNG of 400 KB failed the step with Pillow's DecompressionBombError,
one of 12,000 × 12,000 took 2 GB. A spec run with ``--untrusted`` reads only files inside the
working directory (links resolved), the eval set and every image it lists.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curate.embeddings import EmbeddingStore
from curate.errors import CurateError
from curate.runfiles import (
    UNTRUSTED_READS,
    NotRegularFile,
    confined,
    describe_mode,
    not_regular,
    open_regular,
    outside_working_directory,
    real_folders,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
ID_COLUMNS = ("eval_id", "id", "uid", "key")
MAX_PIXELS = 50_000_000  # the download step's default max_image_area
MAX_IMAGE_BYTES = 256 << 20
FORMS = ("give an embedding store directory, a Parquet file with an image_path column, or a directory of "
         "images")
STORE_REPAIR = "the eval set's embedding store was changed after it was written: write it again"


class EvalSetError(CurateError):
    """An eval set, or an image of it, is not what it must be: bad input (exit 2)."""

    exit_code = 2


@dataclass
class EvalFiles:
    kind: str  # store, parquet or images
    names: list[str]  # parquet and images: one per image
    images: list[Path]
    store: EmbeddingStore | None = None


def store_at(directory: Path) -> EmbeddingStore:
    """An EmbeddingStore whose ``dir`` is exactly ``directory``; its errors say how to repair
    an eval set, not to remove a step's store (the folder holding the eval set)."""
    store = EmbeddingStore(directory, "")
    store.dir = directory
    store.repair = STORE_REPAIR
    return store


def locate(raw: str, path_column: str, id_column: str | None, untrusted: bool = False) -> EvalFiles:
    """The eval set named ``raw`` (relative to the working directory), or a CurateError saying
    what is wrong with it and how to fix it."""
    if untrusted and (outside := outside_working_directory(raw)):
        raise EvalSetError(f"eval set {outside}")
    path = Path(raw).expanduser()
    within = real_folders([os.getcwd()]) if untrusted else None
    if path.is_dir() and os.path.lexists(path / "meta.json"):
        return _store(path, within)
    if path.is_dir():
        images = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
        names = [p.relative_to(path).as_posix() for p in images]
        files = EvalFiles("images", names, images)
    elif (why := not_regular(path)) is None:
        names, images = _parquet_items(path, path_column, id_column)
        files = EvalFiles("parquet", names, images)
    else:
        raise EvalSetError(f"eval set {path} {why}", FORMS)
    if not files.images:
        raise EvalSetError(f"eval set {path} holds no images",
                           f"image files end in {', '.join(sorted(IMAGE_SUFFIXES))}")
    for name, image in zip(files.names, files.images):
        _check_image(image, name, path, within)
    return files


def _store(directory: Path, within: tuple[Path, ...] | None) -> EvalFiles:
    store = store_at(directory)
    store.meta()  # a CurateError naming meta.json when it is not what a store writes
    for file in sorted(directory.iterdir()):
        if file.name == "meta.json" or file.name.startswith("shard-"):
            why = not_regular(file)
            if why:
                raise EvalSetError(f"eval set {directory}: {file.name} {why}", STORE_REPAIR)
            if within is not None and confined(file, within) is None:
                raise EvalSetError(f"eval set {directory}: {file.name} is a link to {os.path.realpath(file)}, outside "
                                   f"the working directory; {UNTRUSTED_READS}")
    return EvalFiles("store", [], [], store)


def _refuse_unpacked(path: Path) -> None:
    """An eval set whose text unpacks past its budget (a value stored once in a Parquet dictionary
    counts once per row): 207 kB took 2.75 GB and 37 s at curate validate (security re-probe)."""
    from curate.unpacked import past_whole_file_budget

    if (said := past_whole_file_budget(path, "an eval set")) is not None:
        raise EvalSetError(f"eval set {path} {said}", "list each image once")


def _parquet_items(path: Path, path_column: str, id_column: str | None) -> tuple[list[str], list[Path]]:
    try:
        with open_regular(path) as handle:
            _refuse_unpacked(path)
            frame = pl.read_parquet(handle)
    except EvalSetError:
        raise
    except NotRegularFile as exc:
        raise EvalSetError(f"eval set {path} is {describe_mode(exc.mode)}, not a file", FORMS) from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same problem for the user
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise EvalSetError(f"eval set {path} is not a readable Parquet file ({first})", FORMS) from None
    if path_column not in frame.columns:
        raise EvalSetError(f"eval set {path} has no '{path_column}' column",
                           f"columns: {', '.join(frame.columns)}; set path_column")
    if frame[path_column].dtype != pl.Utf8:
        raise EvalSetError(f"eval set {path}: column '{path_column}' holds {frame[path_column].dtype}, not image paths",
                           "give each image's path as a string, relative to the Parquet file; or set path_column")
    if frame[path_column].null_count():
        row = int(frame[path_column].is_null().arg_max() or 0)
        raise EvalSetError(f"eval set {path}: row {row + 1:,} has no image path ('{path_column}' is null)",
                           "give every row an image, or drop the rows without one")
    if id_column is None:
        id_column = next((c for c in ID_COLUMNS if c in frame.columns), None)
    elif id_column not in frame.columns:
        raise EvalSetError(f"eval set {path} has no '{id_column}' column", f"columns: {', '.join(frame.columns)}")
    names = ([str(v) for v in frame[id_column].to_list()] if id_column
             else [str(i) for i in range(frame.height)])
    images = [path.parent / p for p in frame[path_column].to_list()]
    return names, images


def _check_image(image: Path, name: str, eval_path: Path, within: tuple[Path, ...] | None) -> None:
    why = not_regular(image)
    if why:
        raise EvalSetError(f"eval image {image} (item {name!r} of {eval_path}) {why}",
                           "give every item an image file, or drop the items without one")
    if within is not None and confined(image, within) is None:
        raise EvalSetError(f"eval image {image} (item {name!r} of {eval_path}) lies at {os.path.realpath(image)}, "
                           f"outside the working directory; {UNTRUSTED_READS}")


def read_image(path: Path, prepare: Any, within: tuple[Path, ...] | None = None) -> Any:
    """``prepare(image)`` of the RGB image in the regular file ``path``: at most
    :data:`MAX_IMAGE_BYTES` read, and decoded only if its header declares at most
    :data:`MAX_PIXELS` pixels. ``within``: the file must lie in one of these folders."""
    import io

    from PIL import Image, UnidentifiedImageError

    real = path if within is None else confined(path, within)
    if real is None:
        raise EvalSetError(f"eval image {path} lies at {os.path.realpath(path)}, outside the working directory; "
                           f"{UNTRUSTED_READS}")
    try:
        with open_regular(real) as handle:
            data = handle.read(MAX_IMAGE_BYTES + 1)
    except NotRegularFile as exc:
        raise EvalSetError(f"eval image {path} is {describe_mode(exc.mode)}, not a file") from None
    except OSError as exc:
        raise EvalSetError(f"eval image {path} cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise EvalSetError(f"eval image {path} is larger than {MAX_IMAGE_BYTES:,} bytes", "give a smaller image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below decides
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise EvalSetError(f"eval image {path} is {width:,} × {height:,} pixels, more than the "
                                       f"{MAX_PIXELS:,} an image may have", "downscale it (it is compared at the "
                                       "model's input size anyway)")
                return prepare(image.convert("RGB"))
    except UnidentifiedImageError:
        raise EvalSetError(f"eval image {path} is not an image Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise EvalSetError(f"eval image {path} declares more pixels than the {MAX_PIXELS:,} an image may have "
                           f"({exc})", "downscale it") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise EvalSetError(f"eval image {path} cannot be read ({exc})") from None
