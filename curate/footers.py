"""A Parquet file's footer, read once per process and file version, and kept small.

Planning and reading a Parquet source asked each file for its footer four times: its schema
(Polars), its time zones (pyarrow), whether DuckDB reads it as Polars does (pyarrow) and the
in-place read's columns (Polars), ~1.4 ms each, so 2,000 files cost ~11 s before a row was
read. Each reader's answer is kept here, keyed by the file's path and what ``stat`` says of it
(size, mtime, ctime, inode), so a file rewritten in between is read again. What is kept of
pyarrow's reading is a few facts (:class:`ArrowFooter`), not its metadata objects: a source of
100,000 files keeps 100,000 of them.

Each footer is read once in all, by pyarrow. Polars read each one again for its schema (~0.16 ms
a file, a third of planning a source of 10,000 small files), though what it reads a schema from,
the Parquet schema and the Arrow schema the writer stored, is what :attr:`ArrowFooter.
schema_digest` digests: Polars reads one file of each digest, and its schema stands for the
others. A file pyarrow cannot read is read by Polars, which raises as it raises. What a footer's
schema says (its time zones, whether DuckDB reads it otherwise) is found once per digest too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl

# Files whose footers are kept (the last used); a source of more files reads some again.
KEPT = 1 << 17


@dataclass(frozen=True)
class ArrowFooter:
    """What curate asks of a Parquet footer through pyarrow."""

    rows: int
    # the largest row group's unpacked bytes per row (a value repeated in a dictionary counts once)
    widest_row_bytes: float
    # (column, time zone) of every timestamp with a zone, in lists, structs and maps too
    zones: tuple[tuple[str, str], ...]
    # a column DuckDB reads as other values than Polars does (curate.ingest._duckdb_reads_otherwise)
    duckdb_differs: bool
    # per row group: (rows, the most its text and bytes in a dictionary may unpack to): a value
    # stored once in a dictionary may stand for every row, and the footer's sizes count it once;
    # no value is longer than its column chunk unpacked (curate.unpacked)
    dictionary_bounds: tuple[tuple[int, int], ...] = ()
    # a digest of the file's Parquet schema (names, physical and logical types) and of the Arrow
    # schema its writer stored: files with one digest are read by DuckDB with one schema
    schema_digest: str = ""
    row_groups: int = 0


def _version(path: Path | str) -> tuple[str, int, int, int, int]:
    stat = os.stat(path)
    return str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


def polars_schema(path: Path | str) -> dict[str, pl.DataType]:
    """``pl.read_parquet_schema(path)`` (raising as it raises), read once per schema digest."""
    version = _version(path)
    footer = _arrow_footer(version)
    if footer is None:
        return dict(_polars_schema(version))
    known = _BY_DIGEST.get(footer.schema_digest)
    if known is None:
        if len(_BY_DIGEST) >= KEPT:
            _BY_DIGEST.clear()
        known = _BY_DIGEST[footer.schema_digest] = dict(_polars_schema(version))
    return dict(known)


def arrow_footer(path: Path | str) -> ArrowFooter | None:
    """The facts of ``path``'s footer pyarrow reads; None when pyarrow cannot read it."""
    return _arrow_footer(_version(path))


# Polars' schema of the files of each schema digest (the first one read)
_BY_DIGEST: dict[str, dict[str, pl.DataType]] = {}


@lru_cache(maxsize=KEPT)
def _polars_schema(version: tuple[str, int, int, int, int]) -> dict[str, pl.DataType]:
    return dict(pl.read_parquet_schema(version[0]))


@lru_cache(maxsize=KEPT)
def _arrow_footer(version: tuple[str, int, int, int, int]) -> ArrowFooter | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pa.OSFile(version[0]) as file:  # not a path: pyarrow resolves a filesystem for it (~20 µs)
            metadata = pq.read_metadata(file)
        digest = _schema_digest(metadata)
        facts = _SCHEMA_FACTS.get(digest)
        if facts is None:
            facts = _schema_facts(metadata, metadata.schema.to_arrow_schema())
            if len(_SCHEMA_FACTS) >= KEPT:
                _SCHEMA_FACTS.clear()
            _SCHEMA_FACTS[digest] = facts
    except Exception:  # not Parquet pyarrow reads: the caller's reader says what is wrong
        return None
    widest, bounds = 0.0, []
    for index in range(metadata.num_row_groups):  # once: a file of 100,000 row groups is read here
        group, bound = metadata.row_group(index), 0
        if group.num_rows:
            widest = max(widest, group.total_byte_size / group.num_rows)
        for position in range(group.num_columns):
            chunk = group.column(position)
            if chunk.physical_type == "BYTE_ARRAY" and chunk.has_dictionary_page:
                bound += chunk.num_values * chunk.total_uncompressed_size
        bounds.append((group.num_rows, bound))
    zones, differs = facts
    return ArrowFooter(metadata.num_rows, widest, zones, differs, tuple(bounds), digest,
                       metadata.num_row_groups)


# The facts of each schema digest (both schemas are in it): (zones, whether DuckDB reads otherwise)
_SCHEMA_FACTS: dict[str, tuple[tuple[tuple[str, str], ...], bool]] = {}


def _schema_facts(metadata: Any, schema: Any) -> tuple[tuple[tuple[str, str], ...], bool]:
    """The time zones of a footer's schema, and whether DuckDB reads a column of it otherwise."""
    import pyarrow as pa

    zones, differs = [], False
    for column, dtype in _leaves(schema):
        if pa.types.is_timestamp(dtype) and dtype.tz:
            zones.append((column, dtype.tz))
        # DuckDB takes a duration's raw count (a pyarrow duration[s] became as many ms), an
        # extension type's storage (a UUID came back as the bytes of its text), a date64 as ms
        differs = differs or isinstance(dtype, pa.BaseExtensionType) or pa.types.is_duration(dtype) \
            or pa.types.is_date64(dtype)
    # an INT96 timestamp (DuckDB cuts its nanoseconds) or a UUID another writer marked in Parquet alone
    columns = [metadata.schema.column(i) for i in range(len(metadata.schema))]
    differs = differs or any(c.physical_type == "INT96" or str(c.logical_type) == "UUID" for c in columns)
    return tuple(zones), differs


def _schema_digest(metadata: Any) -> str:
    """What DuckDB reads a file's columns and types from: the Parquet schema (its text, less the
    first line, which names the Python object) and the Arrow schema the writer stored, digested."""
    parquet = str(metadata.schema).partition("\n")[2]
    arrow = (metadata.metadata or {}).get(b"ARROW:schema", b"")
    return hashlib.blake2b(parquet.encode() + b"\0" + arrow, digest_size=16).hexdigest()


def _leaves(schema: Any) -> Iterator[tuple[str, Any]]:
    """(top-level column, type) of every type in ``schema``, nested ones included (the one walker
    of pyarrow types: lists, structs and maps)."""
    import pyarrow as pa

    stack = [(field.name, field.type) for field in schema]
    while stack:
        column, dtype = stack.pop()
        yield column, dtype
        if isinstance(dtype, pa.BaseExtensionType):
            continue
        if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype):
            stack.append((column, dtype.value_type))
        elif pa.types.is_struct(dtype):
            stack.extend((column, dtype.field(i).type) for i in range(dtype.num_fields))
        elif pa.types.is_map(dtype):
            stack.extend([(column, dtype.key_type), (column, dtype.item_type)])
