"""What a page left out, why, and the command that allows it.

A report reads a step's rows and embeds images only from inside the run directory and the
folders the user allowed (``curate report RUN --read-from DIR``): a run directory from someone
else names its own files (the manifest a step's folder, a row an image shard), and could
otherwise put any table or picture on this computer into a page you may pass on. What it
refused is said once, at the top of the page and as one warning, with the folders to allow.
"""

from __future__ import annotations

import os
import shlex
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

LEFT_OUT_ORDER = 5  # first on the page: the reader must see why rows or pictures are missing
FOLDERS_SHOWN = 3
STEPS_SHOWN = 3


def folders_to_allow(paths: Iterable[Path], store_dir: Path | None) -> list[Path]:
    """The folders that hold ``paths`` (refused steps' folders, shards or files, links resolved):
    the run's store when they are in it (a store kept outside the run, ``run.cache_dir``), else
    each folder itself, or each file's folder."""
    store = Path(os.path.realpath(store_dir)) if store_dir is not None else None
    folders = set()
    for path in paths:
        if store is not None and path.is_relative_to(store):
            folders.add(store)
        else:
            folders.add(path if path.is_dir() else path.parent)
    return sorted(folders)


def _steps(labels: list[str]) -> str:
    shown = ", ".join(f"'{label}'" for label in labels[:STEPS_SHOWN])
    if len(labels) == 1:
        return f"step {shown}"
    more = f" and {len(labels) - STEPS_SHOWN} more" if len(labels) > STEPS_SHOWN else ""
    return f"{len(labels)} steps ({shown}{more})"


def left_out_message(images: int, steps: list[str], run_dir: Path, folders: list[Path]) -> tuple[str, str, str]:
    """(title, why, the command that allows them) for a page that left ``images`` images and the
    rows of the steps labelled ``steps`` out."""
    parts, kinds = [], []
    if steps:
        parts.append(f"the rows of {_steps(steps)} were not read")
        kinds.append("table")
    if images:
        parts.append(("1 image was" if images == 1 else f"{images:,} images were") + " not embedded")
        kinds.append("picture")
    names = "the run names" if steps else "the run's rows name"  # its manifest, links or kept.json; or its rows
    why = (f"{' and '.join(parts)}: {names} files outside its directory ({run_dir}), and a run directory from "
           f"elsewhere could otherwise put any {' or '.join(kinds)} on this computer into the page")
    options = " ".join(f"--read-from {shlex.quote(str(folder))}" for folder in folders[:FOLDERS_SHOWN])
    more = f" (and {len(folders) - FOLDERS_SHOWN} more folders)" if len(folders) > FOLDERS_SHOWN else ""
    title = ("Rows and images left out" if steps and images else "Rows not read" if steps
             else "Images not embedded")
    return title, why[0].upper() + why[1:], f"curate report {shlex.quote(str(run_dir))} {options}{more}"


def left_out_section(images: int, steps: list[str], run_dir: Path, folders: list[Path]) -> dict[str, Any]:
    """The note at the top of a page that left images or rows out, and the same as one warning."""
    from curate_report.html import Html, esc
    from curate_report.sections import ReportWarning

    title, why, command = left_out_message(images, steps, run_dir, folders)
    warnings.warn(f"{why}; if you trust these files: {command}", ReportWarning, stacklevel=2)
    return {"title": title, "order": LEFT_OUT_ORDER,
            "html": Html(f"<p class='note bad'>{esc(why)}. If you trust these files, allow their folders: "
                         f"<code>{esc(command)}</code></p>")}
