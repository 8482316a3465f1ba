"""A Parquet file's footer, read once per process and file version.

Planning and reading a Parquet source asked each file for its footer four times: its schema
(Polars), its time zones (pyarrow), whether DuckDB reads it as Polars does (pyarrow) and the
in-place read's columns (Polars), ~1.4 ms each, so 2,000 files cost ~11 s before a row was
read. Each reader's answer is kept here, keyed by the file's path and what ``stat`` says of it
(size, mtime, ctime, inode), so a file rewritten in between is read again.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl

# Files whose footers are kept (the last used); a source of more files reads some again.
KEPT = 8192


def _version(path: Path | str) -> tuple[str, int, int, int, int]:
    stat = os.stat(path)
    return str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


def polars_schema(path: Path | str) -> dict[str, pl.DataType]:
    """``pl.read_parquet_schema(path)`` (raising as it raises)."""
    return dict(_polars_schema(_version(path)))


def arrow_metadata(path: Path | str) -> Any:
    """pyarrow's ``FileMetaData`` of ``path`` (its ``.schema`` the Parquet schema, and
    ``.schema.to_arrow_schema()`` the Arrow one); None when pyarrow cannot read the footer."""
    return _arrow_metadata(_version(path))


@lru_cache(maxsize=KEPT)
def _polars_schema(version: tuple[str, int, int, int, int]) -> dict[str, pl.DataType]:
    return dict(pl.read_parquet_schema(version[0]))


@lru_cache(maxsize=KEPT)
def _arrow_metadata(version: tuple[str, int, int, int, int]) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(version[0])
    except Exception:  # not Parquet pyarrow reads: the caller's reader says what is wrong
        return None
