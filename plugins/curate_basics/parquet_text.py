"""Parquet strings that are not UTF-8: where the first one is, and a reader that mends them.

Parquet's strings must be UTF-8, and DuckDB and Polars refuse a file whose strings are not ("Invalid
string encoding found in Parquet file", "String data contained invalid UTF-8"), without a row or a
column. Writers that skip the check (pyarrow built from buffers, hand-rolled exporters, a latin-1
column labelled as text) make such files. pyarrow reads them without checking, so both jobs go
through it: :func:`first_bad_string` names the row and column, streaming and bounded;
:func:`scan_lossy` reads the file with each bad byte sequence replaced by U+FFFD (what a CSV's
``utf8-lossy`` does), a batch at a time. Strings inside list and struct columns too.
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
    value: bytes  # the start of the value (empty for a string inside a list or struct)
    nested: bool = False

    def render(self) -> str:
        if self.nested:
            return f"row {self.row}, column {self.column!r}: holds a string (in a list or struct) that is not UTF-8"
        shown = repr(self.value[:60]) + ("…" if len(self.value) > 60 else "")
        return f"row {self.row}, column {self.column!r}: {shown} is not UTF-8"


def _holds_text(kind: pa.DataType) -> bool:
    """A string type, or a list or struct with one somewhere inside."""
    import pyarrow as pa

    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return True
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _holds_text(kind.value_type)
    if pa.types.is_struct(kind):
        return any(_holds_text(kind.field(i).type) for i in range(kind.num_fields))
    return False


def _is_text(kind: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _string_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if _holds_text(f.type)]


def _first_invalid_row(values: pa.Array) -> int | None:
    """The first row of ``values`` whose strings (nested ones too) are not all UTF-8, or None.
    A string column says its index; a nested one is searched by halves, each half copied out
    first (a list's slice is validated with its whole child array)."""
    import pyarrow as pa

    try:
        values.validate(full=True)
        return None
    except pa.ArrowInvalid as exc:
        if _is_text(values.type) and (found := _AT.search(str(exc))) is not None:
            return int(found.group(1))
    lo, hi = 0, len(values) - 1  # the first bad row lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            pa.concat_arrays([values.slice(lo, mid - lo + 1)]).validate(full=True)
            lo = mid + 1
        except pa.ArrowInvalid:
            hi = mid
    return lo


def first_bad_string(path: Path, limit: int = LIMIT) -> BadString | None:
    """The first string value in ``path`` that is not UTF-8 (in a string column, or inside a list
    or struct column), or None when there is none within ``limit`` bytes of string data."""
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
                if (index := _first_invalid_row(batch.column(name))) is not None:
                    bad.append((index, order, name))
            if bad:
                index, _, name = min(bad)
                values = batch.column(name)
                if _is_text(values.type):
                    raw = values.cast(pa.large_binary())[index].as_py() or b""
                    return BadString(start + index + 1, name, raw[:64])
                return BadString(start + index + 1, name, b"", nested=True)
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


def _mend_array(values: pa.Array) -> pa.Array:
    """``values`` with every string in it (inside lists and structs too) mended by :func:`_mended`;
    lists keep their offsets and nulls, structs their fields and nulls."""
    import pyarrow as pa

    kind = values.type
    if _is_text(kind):
        raw = values.cast(pa.large_binary())  # the bytes as they are: no check
        return _mended(pl.Series("", raw)).to_arrow()
    if not _holds_text(kind):
        return values
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if values.offset:  # offsets from 0, and a child holding this slice's values only
            values = pa.concat_arrays([values])
        build = pa.ListArray if pa.types.is_list(kind) else pa.LargeListArray
        return build.from_arrays(values.offsets, _mend_array(values.values),
                                 mask=values.is_null() if values.null_count else None)
    children = [_mend_array(child) for child in values.flatten()]  # a struct
    return pa.StructArray.from_arrays(children, names=[kind.field(i).name for i in range(kind.num_fields)],
                                      mask=values.is_null() if values.null_count else None)


def scan_lossy(path: Path) -> pl.LazyFrame:
    """``path`` as a lazy frame whose strings are mended (:func:`_mended`), read a batch at a time."""
    import pyarrow.parquet as pq
    from polars.io.plugins import register_io_source

    schema = dict(pl.read_parquet_schema(path))

    def batches(with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None,
                batch_size: int | None) -> Iterator[pl.DataFrame]:
        import pyarrow as pa

        left = n_rows
        with pq.ParquetFile(path) as file:
            columns = set(_string_columns(file.schema_arrow))
            for batch in file.iter_batches(batch_size=batch_size or BATCH_ROWS, columns=with_columns):
                names = batch.schema.names
                frame = pl.from_arrow(pa.RecordBatch.from_arrays(
                    [_mend_array(batch.column(n)) if n in columns else batch.column(n) for n in names], names=names))
                assert isinstance(frame, pl.DataFrame)
                have = frame.schema  # once: per column it cost O(columns²)
                frame = frame.cast({n: schema[n] for n in have if have[n] != schema[n]})
                if predicate is not None:
                    frame = frame.filter(predicate)
                if left is not None:
                    frame = frame.head(left)
                    left -= frame.height
                yield frame
                if left is not None and left <= 0:
                    return

    return register_io_source(batches, schema=schema)
