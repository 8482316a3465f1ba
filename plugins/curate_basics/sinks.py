"""File sinks: Parquet, JSON Lines, CSV, and a DataComp-style sorted uid list (.npy)."""

from __future__ import annotations

from typing import Any

import polars as pl
from pydantic import Field

from curate.atomic import atomic_path
from curate.params import Params
from curate.schema import UID
from curate.sink import Sink
from curate.step import TableInput


class TableSinkParams(Params):
    columns: list[str] | None = Field(None, description="columns to write (default: all)")


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
        with atomic_path(path, sweep=True) as tmp, self.ctx.guarded_file(tmp) as handle:
            _frame(table, self.params.columns).sink_parquet(handle, compression="zstd")
        # glob=False: a file named `out[1].parquet` is that file, not a pattern that matches nothing
        return {"rows": pl.scan_parquet(path, glob=False).select(pl.len()).collect().item()}


class JsonlSink(TableSink):
    format = "jsonl"
    description = "one JSON Lines file"
    Params = TableSinkParams

    def write(self, table: TableInput) -> dict[str, Any]:
        path = self.ctx.output_path
        with atomic_path(path, sweep=True) as tmp, self.ctx.guarded_file(tmp) as handle:
            _frame(table, self.params.columns).sink_ndjson(handle)
        with path.open("rb") as handle:  # closed at once: a leaked handle is a ResourceWarning
            return {"rows": sum(1 for _ in handle)}


class CsvSink(TableSink):
    """One CSV file as Polars writes it (quoted where a cell needs it; null is an empty field).
    Cells are written verbatim, as pandas, DuckDB and Polars write them, also a cell that a
    spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``): see "CSV and spreadsheets" in
    the README. Struct columns are written as JSON text, list columns as their items joined by ``|``."""

    format = "csv"
    description = "one CSV file, cells verbatim (structs as JSON text, lists joined by '|')"
    Params = TableSinkParams

    def write(self, table: TableInput) -> dict[str, Any]:
        path = self.ctx.output_path
        frame = _frame(table, self.params.columns)
        nested = [n for n, d in frame.collect_schema().items() if d.is_nested()]
        if nested:
            frame = frame.with_columns([pl.col(n).struct.json_encode() if isinstance(frame.collect_schema()[n], pl.Struct)
                                        else pl.col(n).cast(pl.List(pl.Utf8)).list.join("|") for n in nested])
        with atomic_path(path, sweep=True) as tmp, self.ctx.guarded_file(tmp) as handle:
            frame.sink_csv(handle)
        return {"rows": table.scan().select(pl.len()).collect().item()}


class UidListSink(Sink):
    """The kept uids, sorted, as a .npy file — DataComp's format for a filtered subset."""

    format = "uids"
    description = "sorted uid list (.npy), DataComp-style"
    reads = {UID: pl.Utf8}
    path_kind = "file"

    def write(self, table: TableInput) -> dict[str, Any]:
        import numpy as np

        uids = table.scan().select(UID).collect()[UID].drop_nulls().to_list()
        if uids and all(len(u) == 32 for u in uids):  # DataComp's 128-bit hex uids
            array = np.array([(int(u[:16], 16), int(u[16:], 16)) for u in uids], np.dtype("u8,u8"))
        else:
            array = np.array([int(u, 16) if _is_hex(u) else _hash64(u) for u in uids], dtype=np.uint64)
        array.sort()
        path = self.ctx.output_path
        with atomic_path(path, sweep=True) as tmp, self.ctx.guarded_file(tmp) as handle:
            np.save(handle, array)
        return {"rows": int(array.shape[0])}


def _is_hex(text: str) -> bool:
    return 0 < len(text) <= 16 and all(c in "0123456789abcdefABCDEF" for c in text)


def _hash64(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
