"""Parquet strings that are not UTF-8: where the first one is, and a reader that mends them.

Parquet's strings must be UTF-8, and DuckDB and Polars refuse a file whose strings are not ("Invalid
string encoding found in Parquet file", "String data contained invalid UTF-8"), without a row or a
column. Writers that skip the check (pyarrow built from buffers, hand-rolled exporters, a latin-1
column labelled as text) make such files. pyarrow reads them without checking, so both jobs go
through it: :func:`first_bad_string` names the row and column, streaming and bounded;
:func:`scan_lossy` reads the file with each bad byte sequence replaced by U+FFFD (what a CSV's
``utf8-lossy`` does), a batch at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    import pyarrow as pa

LIMIT = 512 * 1024 * 1024  # bytes of strings checked at most; a 10 GB file is not re-read to word an error
BATCH_ROWS = 65_536
NOT_UTF8 = ("invalid utf-8", "invalid utf8", "not valid utf8", "invalid string encoding")
_AT = re.compile(r"string index (\d+)")


def says_not_utf8(error: BaseException) -> bool:
    """Whether a reader's error is about strings that are not UTF-8."""
    text = str(error).lower()
    return any(phrase in text for phrase in NOT_UTF8)


@dataclass(frozen=True)
class BadString:
    row: int  # 1-based, in the file
    column: str
    value: bytes  # the start of the value

    def render(self) -> str:
        shown = repr(self.value[:60]) + ("…" if len(self.value) > 60 else "")
        return f"row {self.row}, column {self.column!r}: {shown} is not UTF-8"


def _string_columns(schema: pa.Schema) -> list[str]:
    import pyarrow as pa

    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]


def first_bad_string(path: Path, limit: int = LIMIT) -> BadString | None:
    """The first string value in ``path`` that is not UTF-8 (top-level string columns), or None
    when there is none within ``limit`` bytes of string data."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as file:
        columns = _string_columns(file.schema_arrow)
        if not columns:
            return None
        seen, start = 0, 0
        for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            bad = []  # (row in the batch, column order, column): the first row wins, then the first column
            for order, name in enumerate(columns):
                try:
                    batch.column(name).validate(full=True)
                except pa.ArrowInvalid as exc:
                    if (found := _AT.search(str(exc))) is not None:
                        bad.append((int(found.group(1)), order, name))
            if bad:
                index, _, name = min(bad)
                raw = batch.column(name).cast(pa.large_binary())[index].as_py() or b""
                return BadString(start + index + 1, name, raw[:64])
            start += batch.num_rows
            seen += batch.nbytes
            if seen >= limit:
                return None
    return None


def _mended(values: pl.Series) -> pl.Series:
    """Binary values as text: valid UTF-8 as it is, the rest with bad bytes replaced by U+FFFD."""
    try:
        return values.cast(pl.Utf8)
    except pl.exceptions.ComputeError:  # some value is not UTF-8: this batch in Python
        return pl.Series(values.name, [None if v is None else v.decode("utf-8", "replace") for v in values.to_list()],
                         dtype=pl.Utf8)


def _as_bytes(batch: pa.RecordBatch, columns: list[str]) -> pa.RecordBatch:
    """The batch with its string columns typed as bytes (no copy, no check), so Polars takes them."""
    import pyarrow as pa

    arrays = [batch.column(f.name).cast(pa.large_binary()) if f.name in columns else batch.column(f.name)
              for f in batch.schema]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def scan_lossy(path: Path) -> pl.LazyFrame:
    """``path`` as a lazy frame whose strings are mended (:func:`_mended`), read a batch at a time."""
    import pyarrow.parquet as pq
    from polars.io.plugins import register_io_source

    schema = dict(pl.read_parquet_schema(path))

    def batches(with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None,
                batch_size: int | None) -> Iterator[pl.DataFrame]:
        left = n_rows
        with pq.ParquetFile(path) as file:
            columns = _string_columns(file.schema_arrow)
            for batch in file.iter_batches(batch_size=batch_size or BATCH_ROWS, columns=with_columns):
                frame = pl.from_arrow(_as_bytes(batch, columns))
                assert isinstance(frame, pl.DataFrame)
                frame = frame.with_columns(pl.col(c).map_batches(_mended, return_dtype=pl.Utf8)
                                           for c in columns if c in frame.columns)
                if predicate is not None:
                    frame = frame.filter(predicate)
                if left is not None:
                    frame = frame.head(left)
                    left -= frame.height
                yield frame
                if left is not None and left <= 0:
                    return

    return register_io_source(batches, schema=schema)
