"""File sinks: Parquet, JSON Lines, CSV, and a DataComp-style sorted uid list (.npy)."""

from __future__ import annotations

from typing import Any

import polars as pl
from pydantic import Field, field_validator

from curate.atomic import atomic_path
from curate.errors import OutputError
from curate.params import Params
from curate.schema import UID, nested_types
from curate.sink import Sink
from curate.step import TableInput


class TableSinkParams(Params):
    columns: list[str] | None = Field(None, description="columns to write (default: all)")

    @field_validator("columns")
    @classmethod
    def _each_once(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (twice := sorted({c for c in value if value.count(c) > 1})):
            raise ValueError(f"names {', '.join(repr(c) for c in twice)} more than once: list each column once")
        return value


def _frame(table: TableInput, columns: list[str] | None) -> pl.LazyFrame:
    frame = table.scan()
    return frame.select(columns) if columns else frame


class TableSink(Sink):
    """A sink writing the chosen ``columns`` (planning checks that they exist)."""

    Params = TableSinkParams
    path_kind = "file"

    def input_columns(self) -> dict[str, Any]:
        return dict.fromkeys(self.params.columns or [])


class ParquetSink(TableSink):
    format = "parquet"
    description = "one Parquet file (streamed, so bounded memory)"
    Params = TableSinkParams

    def write(self, table: TableInput) -> dict[str, Any]:
        path = self.ctx.output_path
        with atomic_path(path, sweep=True, keep_same=True) as tmp, self.ctx.guarded_file(tmp) as handle:
            _frame(table, self.params.columns).sink_parquet(handle, compression="zstd")
        # glob=False: a file named `out[1].parquet` is that file, not a pattern that matches nothing
        return {"rows": pl.scan_parquet(path, glob=False).select(pl.len()).collect().item()}


class JsonlSink(TableSink):
    format = "jsonl"
    description = "one JSON Lines file (bytes as base64 text; NaN and ±inf as null: JSON has neither)"
    Params = TableSinkParams

    def write(self, table: TableInput) -> dict[str, Any]:
        path = self.ctx.output_path
        frame = _frame(table, self.params.columns)
        # JSON has no bytes: base64 text, also inside lists and structs (Polars' writer panicked on them)
        texts = [_as_text(pl.col(n), d, durations=False).alias(n) for n, d in frame.collect_schema().items()
                 if _holds(d, _BYTES)]
        if texts:
            frame = frame.with_columns(texts)
        with atomic_path(path, sweep=True, keep_same=True) as tmp, self.ctx.guarded_file(tmp) as handle:
            frame.sink_ndjson(handle)
        with path.open("rb") as handle:  # closed at once: a leaked handle is a ResourceWarning
            return {"rows": sum(1 for _ in handle)}


class CsvSinkParams(TableSinkParams):
    bom: bool = Field(False, description="start the file with a UTF-8 byte order mark: Excel, opening a CSV by "
                      "double-click, reads it as UTF-8 only then (else CJK, Arabic or emoji show as mojibake)")


class CsvSink(TableSink):
    """One CSV file as Polars writes it (quoted where a cell needs it; null is an empty field).
    Cells are written verbatim, as pandas, DuckDB and Polars write them, also a cell that a
    spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``): see "CSV and spreadsheets" in
    the README. Struct and list columns are written as JSON text, bytes as base64."""

    format = "csv"
    description = "one CSV file, cells verbatim (structs and lists as JSON text, bytes as base64)"
    Params = CsvSinkParams

    def write(self, table: TableInput) -> dict[str, Any]:
        path = self.ctx.output_path
        frame = _frame(table, self.params.columns)
        schema = frame.collect_schema()
        cells = [_csv_cell(name, dtype) for name, dtype in schema.items()
                 if dtype.is_nested() or dtype == pl.Binary or isinstance(dtype, pl.Duration)]
        if cells:
            frame = frame.with_columns(cells)
        with atomic_path(path, sweep=True, keep_same=True) as tmp, self.ctx.guarded_file(tmp) as handle:
            frame.sink_csv(handle, include_bom=self.params.bom)
        return {"rows": table.scan().select(pl.len()).collect().item()}


def _csv_cell(name: str, dtype: pl.DataType) -> pl.Expr:
    """A column CSV cannot hold as it is, as text: a struct or a list as JSON, bytes as base64.

    Lists of plain values were their items joined by '|': a null item vanished ([1, null, 3] was
    "1|3", as [1, 3] was), and ["a|b"] and ["a", "b"] were both "a|b". As JSON each list reads back
    as it was (null, an empty list and [""] apart)."""
    import json

    column = _as_text(pl.col(name), dtype, durations=True) if _holds(dtype, _BYTES + (pl.Duration,)) else pl.col(name)
    if not dtype.is_nested():  # bytes (base64) or a duration (ISO 8601, as jsonl writes it)
        return column.alias(name)
    if isinstance(dtype, pl.Struct):  # a null struct is an empty field, as every other null (it was "null")
        text = column.struct.json_encode()
        return pl.when(column.is_null()).then(pl.lit(None, pl.Utf8)).otherwise(text).alias(name)
    key = json.dumps(name)  # the list as JSON: wrapped in a struct {name: list} to encode, then unwrapped
    text = pl.struct(column.alias(name)).struct.json_encode().str.strip_prefix("{" + key + ":").str.strip_suffix("}")
    return pl.when(column.is_null()).then(pl.lit(None, pl.Utf8)).otherwise(text).alias(name)


_BYTES = (pl.Binary,)


def _holds(dtype: pl.DataType, kinds: tuple) -> bool:
    """Whether ``dtype`` is, or holds somewhere inside, a type of ``kinds``."""
    return any(isinstance(inner, kinds) or inner in kinds for inner in nested_types(dtype))


def _as_text(expr: pl.Expr, dtype: pl.DataType, durations: bool) -> pl.Expr:
    """``expr`` with its bytes as base64 text (and, with ``durations``, its durations as ISO 8601
    text), wherever they are in it: JSON and CSV have neither, and Polars' writers panicked on bytes
    in a list or a struct and refused durations in CSV."""
    if dtype == pl.Binary:
        return expr.bin.encode("base64")
    if durations and isinstance(dtype, pl.Duration):
        return expr.dt.to_string("iso")
    if isinstance(dtype, (pl.List, pl.Array)):
        listed = expr.cast(pl.List(dtype.inner)) if isinstance(dtype, pl.Array) else expr
        return listed.list.eval(_as_text(pl.element(), dtype.inner, durations))
    if isinstance(dtype, pl.Struct):
        fields = [_as_text(expr.struct.field(f.name), f.dtype, durations).alias(f.name) for f in dtype.fields]
        return pl.when(expr.is_null()).then(None).otherwise(pl.struct(fields))
    return expr


class UidListSink(Sink):
    """The kept uids, sorted, as a .npy file — DataComp's format for a filtered subset."""

    format = "uids"
    description = "sorted uid list (.npy), DataComp-style"
    reads = {UID: pl.Utf8}
    path_kind = "file"

    def write(self, table: TableInput) -> dict[str, Any]:
        import numpy as np

        uids = table.scan().select(UID).collect()[UID].drop_nulls().to_list()
        # One form for the whole file, and one number per uid: DataComp's 128-bit hex uids as their
        # two halves; curate's own (16 lowercase hex digits) as their number; any other uid set
        # hashed, every uid of it (read as hex, "a", "0a", "A" and "000A" were all 10).
        numbers: list[Any]
        if uids and all(_is_hex(u, 32) for u in uids):
            numbers, dtype = [(int(u[:16], 16), int(u[16:], 16)) for u in uids], np.dtype("u8,u8")
        elif all(_is_hex(u, 16) for u in uids):
            numbers, dtype = [int(u, 16) for u in uids], np.dtype(np.uint64)
        else:
            numbers, dtype = [_hash64(u) for u in uids], np.dtype(np.uint64)
        array = np.array(numbers, dtype)
        array.sort()
        if len(array) > 1 and (same := np.flatnonzero(array[1:] == array[:-1])).size:
            value = array[same[0]].tolist()
            twins = [u for u, n in zip(uids, numbers, strict=True) if n == value][:2]
            raise OutputError(f"uids {twins[0]!r} and {twins[1]!r} map to one number in the uid list",
                              "the source's uids collide in 64 bits: write the list of another column, or give the "
                              "rows curate's own uids (leave out the source's uid column)")
        path = self.ctx.output_path
        with atomic_path(path, sweep=True, keep_same=True) as tmp, self.ctx.guarded_file(tmp) as handle:
            np.save(handle, array)
        return {"rows": int(array.shape[0])}


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)


def _hash64(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
