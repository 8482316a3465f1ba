"""The image files a step stored in its own folder for its rows to point at (the download step's
tars, or folders of images: ``image = {shard, key}``), as its markers record them.

A step's markers fingerprint its row files, so a damaged shard is recomputed; the images its rows
point at lay beside them, unrecorded. A store that lost them (a cleanup, an rsync or an archive
that left ``artifacts/`` out, a lost disk) was reused as finished, and the steps after it found no
image for any row: null scores, run "complete". Now a shard step's marker (and its step's) records
each file or folder that its rows reference inside the step's own folder, and a step or shard
whose recorded images are missing or of another size is not reused: the shard is recomputed,
the files that disagree removed first (:func:`remove_damaged`), so the step stores them again.

Sizes, not a checksum: checking a checksum would read every image of the store again on each
cached run (gigabytes); a size catches what loses images (a file gone, cut short), and a copy
that keeps the bytes keeps the sizes (an mtime would not survive ``cp -r``). A folder of images
is recorded as its count of images and their bytes.

Recorded where a shard step that runs alone stores its shard (``curate.shards.run_shard_task``):
the download step is one. Steps that run fused, and table steps, store no images today; a step
that points rows at images it stores must run alone to have them recorded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from curate.images import IMAGE_EXTENSIONS
from curate.schema import Image

ARTIFACTS = "artifacts"  # the only folder of a step's where such files are removed (remove_damaged)


def identity(path: Path) -> str | None:
    """What a marker records of an image file (its size) or a folder of images (their count and
    bytes); None when nothing readable is there."""
    try:
        if path.is_dir():
            count = size = 0
            with os.scandir(path) as entries:
                for entry in entries:
                    extension = entry.name.partition(".")[2].lower()
                    if extension in IMAGE_EXTENSIONS and entry.is_file(follow_symlinks=False):
                        count += 1
                        size += entry.stat(follow_symlinks=False).st_size
            return f"{count} images, {size} bytes"
        return f"{path.stat().st_size} bytes" if path.is_file() else None
    except OSError:
        return None


def referenced_files(frames: Iterable[pl.DataFrame], step_dir: Path, store_dir: str | Path) -> dict[str, str]:
    """The files and folders the ``image`` references of ``frames`` (a shard's kept and dropped
    rows) point at inside ``step_dir``, by path relative to it, each with its :func:`identity`.
    References elsewhere (an upstream step's images, passed through; a source's own) are not the
    step's to record."""
    shards: set[str] = set()
    for frame in frames:
        for name, dtype in frame.schema.items():
            if dtype == Image:
                shards.update(frame[name].struct.field("shard").drop_nulls().unique().to_list())
    step = os.path.normpath(os.path.abspath(step_dir))
    store = os.path.normpath(os.path.abspath(store_dir))
    recorded = {}
    for shard in sorted(shards):
        where = os.path.normpath(os.path.join(store, shard))
        if not where.startswith(step + os.sep):
            continue
        found = identity(Path(where))
        if found is not None:  # a reference to nothing: the reading step says so, naming it
            recorded[Path(os.path.relpath(where, step)).as_posix()] = found
    return recorded


def damaged(step_dir: Path, recorded: dict[str, str]) -> list[tuple[Path, str]]:
    """The recorded image files of ``step_dir`` that are missing or differ, each with why."""
    found = []
    for relative, expected in recorded.items():
        path = Path(step_dir) / relative
        actual = identity(path)
        if actual is None:
            found.append((path, f"{path}, which its marker recorded (images its rows point at), is missing"))
        elif actual != expected:
            found.append((path, f"{path} is not the image file its marker recorded (now {actual}; "
                                f"recorded {expected}): images its rows point at are lost"))
    return found


def images_problem(step_dir: Path, recorded: dict[str, str]) -> str | None:
    """Why the images a step or shard recorded cannot be trusted (the first that differs), or None."""
    found = damaged(step_dir, recorded)
    return found[0][1] if found else None


def remove_damaged(step_dir: Path, marker: dict[str, Any]) -> None:
    """Remove the image files a shard's ``marker`` recorded that differ now, so the step recomputing
    the shard stores them again instead of finding them (a download keeps what it finished).
    Only under the step's ``artifacts/``, named without ``..``: a marker is data."""
    recorded = marker.get("images") if isinstance(marker, dict) else None
    if not isinstance(recorded, dict):
        return
    for path, _ in damaged(step_dir, {k: v for k, v in recorded.items() if isinstance(v, str)}):
        parts = Path(os.path.relpath(path, step_dir)).parts
        if not parts or parts[0] != ARTIFACTS or ".." in parts or len(parts) < 2:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)
