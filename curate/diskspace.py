"""Stop a run before it fills the disk.

A query that multiplies rows (a cross join in an ``sql`` step, a typo in a join key) wrote 6.8 GB
in 30 s, most of it DuckDB spilling a sort to ``RUN_DIR/tmp/duckdb``, and DuckDB's own cap is 90 %
of the free space: a disk filled that far fails everything else on the machine too (other runs,
the shell, CI). ``run.min_free_disk`` is what a run leaves free: every stored shard is written only
while more than that is free, and DuckDB may spill only down to it. Crossing it stops the run with
a message saying so (its finished shards are kept: a re-run resumes), not a full disk.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path
from typing import Any

from curate.errors import CurateError

DEFAULT_MIN_FREE_DISK = "512MB"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str | int) -> int:
    """Bytes in ``512MB``, ``1GB``, ``2GiB``, ``0`` or a whole number of bytes; ValueError otherwise."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is no size")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"{text} is no size (negative)")
        return text
    match = _SIZE.fullmatch(str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"{text!r} is no size: write a number of bytes with a unit, e.g. 512MB, 1GB or 2GiB")
    return int(float(match.group(1)) * _UNITS[unit])


def size_text(count: int) -> str:
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


def free_bytes(path: Path) -> int:
    """Bytes free to this user on the filesystem that holds ``path`` (or would: its nearest folder)."""
    here = Path(path)
    while not here.exists() and here != here.parent:
        here = here.parent
    return shutil.disk_usage(here).free


class DiskNearlyFull(CurateError):
    """Writing more would leave less than ``run.min_free_disk`` free."""


RUN_FIX = ("free disk space, put run.dir (and run.cache_dir) on a bigger disk, or lower run.min_free_disk "
           "(0 turns the check off); a re-run resumes from the shards already stored")


def check_free(path: Path, minimum: int, what: str, fix: str = RUN_FIX) -> None:
    """Raise :class:`DiskNearlyFull` when the disk holding ``path`` has ``minimum`` bytes free or
    fewer (``minimum`` 0: never)."""
    if minimum <= 0:
        return
    free = free_bytes(path)
    if free <= minimum:
        raise DiskNearlyFull(
            f"the disk holding {path} has {size_text(free)} free, at or under run.min_free_disk "
            f"({size_text(minimum)}): curate stopped {what}, rather than fill it", fix)


def output_fix(output: str, minimum: int | None = None) -> str:
    """The hint of an output stopped for space: its own disk, not the run directory's.
    ``minimum``: run.min_free_disk in bytes (0: off, so lowering it is no fix)."""
    lower = "" if minimum == 0 else ", or lower run.min_free_disk (0 turns the check off)"
    return (f"free disk space where output '{output}' goes, or point it at a bigger disk{lower}; a re-run writes "
            "only the outputs (its steps are stored)")


class SpaceGuard:
    """Stops a writer before the disk fills: call :meth:`wrote` with the size of each write before
    making it. It looks at the free space of the disk holding ``path`` (one ``statvfs``) when the
    write would spend what is left of its allowance, at most ``every`` bytes or half of what may
    still be written, whichever is less, and raises :class:`DiskNearlyFull` for a write that would
    leave ``minimum`` or less free: a writer stops within a few kB of the line, never past it alone.
    The error is also kept in :attr:`error`, for a writer (Polars' sinks) that reports it as its own."""

    def __init__(self, path: Path, minimum: int, what: str, fix: str = RUN_FIX, every: int = 4 * 2**20):
        self.path, self.minimum, self.what, self.fix, self.every = Path(path), minimum, what, fix, every
        self.written = 0
        self._allowance = 0  # bytes that may be written before the next look
        self.error: DiskNearlyFull | None = None

    def wrote(self, count: int) -> None:
        if self.minimum > 0 and count > self._allowance:
            free = free_bytes(self.path)
            if free - count <= self.minimum:
                self.error = DiskNearlyFull(
                    f"the disk holding {self.path} has {size_text(free)} free, and writing on would leave less "
                    f"than run.min_free_disk ({size_text(self.minimum)}): curate stopped {self.what} after "
                    f"{size_text(self.written)}, rather than fill it", self.fix)
                raise self.error
            self._allowance = min(self.every, (free - count - self.minimum) // 2) + count
        self._allowance -= count
        self.written += count


class GuardedFile(io.RawIOBase):
    """A binary file open for writing whose every write goes through ``guard`` first: handed to
    Polars' ``sink_parquet`` / ``sink_csv`` / ``sink_ndjson`` (which write to a Python file as to a
    path, the same bytes), a write that would go under the guard's minimum raises and ends the sink."""

    def __init__(self, path: Path, guard: SpaceGuard):
        super().__init__()
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.guard = guard

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.guard.wrote(len(memoryview(data)))
        return self._file.write(data)

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def spill_allowance(path: Path, minimum: int) -> int | None:
    """How many bytes DuckDB may spill under ``path`` and leave ``minimum`` free; None: no cap of
    ours (``minimum`` 0, DuckDB's own default then)."""
    if minimum <= 0:
        return None
    return max(free_bytes(path) - minimum, 0)


def min_free_bytes(setting: str, untrusted: bool) -> int:
    """``run.min_free_disk`` in bytes; a spec from someone else leaves at least the default free,
    whatever it sets (as its queries run at most 600 s, whatever ``run.sql_timeout`` says)."""
    wanted = parse_size(setting)
    return max(wanted, parse_size(DEFAULT_MIN_FREE_DISK)) if untrusted else wanted
