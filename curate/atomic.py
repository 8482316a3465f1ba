"""Write a file whole or not at all: to a temporary sibling, then ``os.replace`` over the target.

A crash or kill in the middle leaves the old file (or none), never a truncated one. Temporaries are
named ``.<name>.<pid>.tmp`` beside the target, so two processes never write the same one.
With ``keep_same``, a file whose new bytes equal the old ones is left as it was (its mtime too).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary(path: Path) -> Path:
    """The temporary name this process writes ``path`` under before renaming it into place."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_path(path: Path | str, *, sweep: bool = False, keep_same: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; when the block ends it replaces ``path`` in one rename, and
    when the block raises it is removed (an ``OSError`` naming no file then names ``path``).
    ``sweep`` first deletes temporaries that dead processes left beside ``path`` (for user-facing
    outputs, where a killed export would otherwise litter, and curate.duckdb). ``keep_same``: when
    ``path`` is a file holding the very bytes written, the temporary is removed and ``path`` is
    left untouched, so a re-run that writes the same output is no change on disk for ``make``,
    ``rsync`` or a file watcher (user-facing outputs; costs a read of both files when the sizes
    agree)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if sweep:
        _sweep(path)
    tmp = temporary(path)
    try:
        yield tmp
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno is not None and not error.filename:
            # a write's error names no file (a full disk, found at close): name the one written
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    if keep_same and same_bytes(tmp, path):
        tmp.unlink()
        return
    os.replace(tmp, path)


def write_text_atomic(path: Path | str, text: str, encoding: str | None = None, *,
                      keep_same: bool = False) -> None:
    with atomic_path(path, keep_same=keep_same) as tmp:
        tmp.write_text(text, encoding=encoding)


def same_bytes(new: Path, old: Path) -> bool:
    """Whether ``old`` is a regular file (not a link) with exactly ``new``'s bytes (for a writer
    that puts several files in place itself, as an export folder does, and keeps the unchanged)."""
    import stat

    try:
        status = os.lstat(old)
        if not stat.S_ISREG(status.st_mode) or status.st_size != new.stat().st_size:
            return False
        with open(new, "rb") as a, open(old, "rb") as b:  # not filecmp: its cache trusts size and mtime
            while True:
                chunk = a.read(1 << 20)
                if chunk != b.read(1 << 20):
                    return False
                if not chunk:
                    return True
    except OSError:
        return False  # unreadable: replaced, as before


def _sweep(path: Path) -> None:
    from curate.lock import pid_alive

    for stale in path.parent.glob(f".{path.name}.*.tmp*"):  # and a database's log beside it (.tmp.wal)
        pid, _, rest = stale.name[len(path.name) + 2:].partition(".")
        if pid.isdigit() and rest in ("tmp", "tmp.wal") and not pid_alive(int(pid)):
            stale.unlink(missing_ok=True)
