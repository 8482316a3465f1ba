"""Content digests of files and directories on disk, for cache keys (model weights, checkpoints).

A file is read once per (path, size, mtime): plans and re-runs that ask again cost a ``stat``.
Only regular files are read: a FIFO would block a plan forever and /dev/zero never ends.
"""

from __future__ import annotations

import hashlib
import stat as stat_mode
from functools import cache
from pathlib import Path

from curate.errors import CurateError
from curate.runfiles import NotRegularFile, describe_mode, open_regular


class NotARegularFile(CurateError):
    """A digest was asked of a directory, FIFO, device or socket (or a link to one)."""

    exit_code = 2


def _refuse(path: str, mode: int) -> NotARegularFile:
    return NotARegularFile(f"{path} is {describe_mode(mode)}: its content cannot be digested",
                           "point at a regular file (weights, a checkpoint)")


@cache
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    try:
        with open_regular(Path(path)) as handle:  # it may have become a FIFO since the stat
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except NotRegularFile as exc:
        raise _refuse(path, exc.mode) from None
    return digest.hexdigest()


def file_digest(path: str | Path) -> str:
    """The SHA-256 (hex) of a regular file's bytes (:class:`NotARegularFile` for anything else)."""
    stat = Path(path).stat()
    if not stat_mode.S_ISREG(stat.st_mode):
        raise _refuse(str(path), stat.st_mode)
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def directory_digest(path: str | Path) -> str:
    """The SHA-256 (hex) of a directory's top-level files: each name and its content digest."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).iterdir() if p.is_file()):
        digest.update(f"{file.name}:{file_digest(file)}\n".encode())
    return digest.hexdigest()
