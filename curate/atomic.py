"""Write a file whole or not at all: to a temporary sibling, then ``os.replace`` over the target.

A crash or kill in the middle leaves the old file (or none), never a truncated one. Temporaries are
named ``.<name>.<pid>.tmp`` beside the target, so two processes never write the same one.
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
def atomic_path(path: Path | str, *, sweep: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; when the block ends it replaces ``path`` in one rename, and
    when the block raises it is removed (an ``OSError`` naming no file then names ``path``).
    ``sweep`` first deletes temporaries that dead processes left beside ``path`` (for user-facing
    outputs, where a killed export would otherwise litter, and curate.duckdb)."""
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
    os.replace(tmp, path)


def write_text_atomic(path: Path | str, text: str, encoding: str | None = None) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def _sweep(path: Path) -> None:
    from curate.lock import pid_alive

    for stale in path.parent.glob(f".{path.name}.*.tmp*"):  # and a database's log beside it (.tmp.wal)
        pid, _, rest = stale.name[len(path.name) + 2:].partition(".")
        if pid.isdigit() and rest in ("tmp", "tmp.wal") and not pid_alive(int(pid)):
            stale.unlink(missing_ok=True)
