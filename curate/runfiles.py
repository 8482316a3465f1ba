"""Reading curate's own small files back (markers, manifests, lock holders, ``kept.json``).

A run directory may come from somewhere else (a shared disk, a colleague's copy), and what sits
where curate keeps a file is not always one: a named pipe there made ``curate inspect``,
``report``, ``plan`` and ``run --resume`` wait forever for a writer, and ``/dev/zero`` linked in
never ends. So these reads open without waiting (``O_NONBLOCK``), read only a regular file, and
at most ``limit`` bytes; anything else is an ``OSError`` naming the file, which every caller
already turns into "damaged, recomputed" or "damaged, here is the repair".
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

MARKER_LIMIT = 16 << 20  # a step's or a shard's marker: a few kB, ~100 bytes per stored file
MANIFEST_LIMIT = 256 << 20  # a manifest: a record per step, however many steps


def read_bytes(path: Path, limit: int = MARKER_LIMIT) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them, never waiting for a
    writer; ``OSError`` naming the file for anything else."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a pipe (FIFO)" if stat.S_ISFIFO(mode) else "a device or socket"
            raise OSError(f"{path} is {kind}, not the file curate wrote there")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise OSError(f"{path} is larger than any file curate writes there ({limit:,} bytes at most)")
    return data


def read_text(path: Path, limit: int = MARKER_LIMIT) -> str:
    """:func:`read_bytes` as UTF-8 (``UnicodeDecodeError`` for other bytes)."""
    return read_bytes(path, limit).decode("utf-8")


def read_json(path: Path, limit: int = MARKER_LIMIT) -> Any:
    """:func:`read_bytes` parsed as JSON (``ValueError`` for anything else)."""
    return json.loads(read_bytes(path, limit))
