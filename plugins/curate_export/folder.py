"""Multi-file exports that are whole or absent, and that never delete files curate did not write.

An export is written into a sibling temporary folder (``.<name>.curate-partial``); a killed
export leaves only that folder, which the next export removes. When every file is written, a
new output folder is renamed into place in one step; an output folder from an earlier export
(it holds our ``_CURATE_EXPORT.json`` listing the files we wrote) has the files that changed
replaced one by one (each rename is atomic, so no reader sees a truncated file), those the new
export no longer has removed, and the listing written last; a file whose bytes are unchanged is
left as it was, its mtime too, so an export that writes the same rows again changes nothing.
A non-empty folder without our listing is refused: its files are the user's. So is one whose
listing names a file outside it (``../x``, ``/x``) or under a link to another folder: a listing is
a file anyone can write, and an export deletes what its listing names.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from curate.atomic import same_bytes, write_text_atomic
from curate.errors import OutputError
from curate.filekeys import inside
from curate.runfiles import read_json, remove_tree

LISTING = "_CURATE_EXPORT.json"
LISTING_LIMIT = 256 << 20  # bytes: a listing names each file an export wrote, ~60 bytes each


def _listing(folder: Path) -> dict | None:
    try:
        # a regular file only, bounded, never a pipe to wait on (a stranger's folder may hold one)
        data = read_json(folder / LISTING, LISTING_LIMIT)
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    return data if isinstance(files, list) and all(_in_folder(folder, f) for f in files) else None


def _in_folder(folder: Path, name: object) -> bool:
    """Whether ``folder / name`` is a file of ``folder``: a relative name, under no link to elsewhere."""
    return inside(name) and not any((folder / parent).is_symlink()
                                    for parent in PurePosixPath(str(name)).parents[:-1])


def check_ours(out: Path, fmt: str) -> list[str]:
    """The files an earlier export wrote into ``out`` (empty for a new or empty folder);
    raises OutputError for a folder holding anything else."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"output '{fmt}' path {out} is a file, not a folder",
                          "point the output's path at a new or empty folder")
    if not out.exists():
        return []
    listing = _listing(out)
    if listing is not None:
        return [str(f) for f in listing["files"]]
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return []
    shown = ", ".join(entries[:8]) + (f", … ({len(entries)} entries)" if len(entries) > 8 else "")
    raise OutputError(
        f"output '{fmt}' folder {out} is not empty and was not written by curate (no {LISTING}, or one naming "
        f"files outside the folder); it holds: {shown}",
        "curate never deletes files it did not write: point the output at a new or empty folder, "
        "or move those files away",
    )


def _partial(out: Path) -> Path:
    return out.with_name(f".{out.name}.curate-partial")


@contextlib.contextmanager
def export_folder(out: Path, fmt: str, facts: dict | None = None) -> Iterator[Path]:
    """Yield a temporary folder to write the export into; on success it becomes ``out``.

    ``facts`` (rows, shards…) go into the listing with the file names."""
    old_files = check_ours(out, fmt)
    partial = _partial(out)
    remove_tree(partial)  # left by a killed export: ours by its name (a pipe there is not opened)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    files = sorted(p.relative_to(partial).as_posix() for p in partial.rglob("*") if p.is_file())
    listing = {"format": fmt, "files": files, **(facts or {})}
    if not out.exists():
        _write_listing(partial, listing)
        partial.rename(out)
        return
    linked = [name for name in files if not _in_folder(out, name)]
    if linked:
        shutil.rmtree(partial, ignore_errors=True)
        raise OutputError(f"output '{fmt}' folder {out} holds a link to another folder where the export "
                          f"writes {linked[0]}", "curate does not write through links: remove the link, or point "
                          "the output at a new or empty folder")
    # An earlier export (ours) or an empty folder. A file holding the very bytes already there is
    # left as it was, its mtime too: a re-run that exports the same rows is no change for make,
    # rsync or a file watcher (as curate.atomic's keep_same for one file). The listing goes last.
    _write_listing(partial, listing)
    changed = [name for name in files if not same_bytes(partial / name, out / name)]
    gone = [name for name in sorted(set(old_files) - set(files) - {LISTING}) if _removable(out / name)]
    if changed or gone:
        # List both sets first, so a kill in the middle leaves a folder a re-run still knows as ours.
        _write_listing(out, {"format": fmt, "files": sorted(set(old_files) | set(files)), "complete": False})
    for name in changed:
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial / name, target)
    for name in gone:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            (out / name).unlink()
    if not same_bytes(partial / LISTING, out / LISTING):
        os.replace(partial / LISTING, out / LISTING)
    shutil.rmtree(partial, ignore_errors=True)


def _removable(path: Path) -> bool:
    """Whether an earlier export's file is there to remove (a link too; a folder is left)."""
    return path.is_symlink() or (path.exists() and not path.is_dir())


def _write_listing(folder: Path, listing: dict) -> None:
    write_text_atomic(folder / LISTING, json.dumps({"complete": True, **listing}, indent=1, sort_keys=True))

