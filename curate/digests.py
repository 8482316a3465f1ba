"""Content digests of files and directories on disk, for cache keys (model weights, checkpoints).

A file is read once per (path, size, mtime): plans and re-runs that ask again cost a ``stat``.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path


@cache
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: str | Path) -> str:
    """The SHA-256 (hex) of a file's bytes."""
    stat = Path(path).stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def directory_digest(path: str | Path) -> str:
    """The SHA-256 (hex) of a directory's top-level files: each name and its content digest."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).iterdir() if p.is_file()):
        digest.update(f"{file.name}:{file_digest(file)}\n".encode())
    return digest.hexdigest()
