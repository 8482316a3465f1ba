"""A Parquet source read where it lies gives the values Polars reads (the plan's), whatever the writer.

DuckDB read some columns otherwise (found by the column-types probe): a pyarrow ``duration[s]``
as its raw count, cast to the plan's milliseconds (1 s became 1 ms), a UUID as the bytes of its
36-character text, an INT96 timestamp cut to microseconds. Such files are staged through Polars
(``curate.ingest._duckdb_reads_otherwise``); others are still read in place."""

from __future__ import annotations

import datetime as dt
import uuid

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.ingest import _duckdb_reads_otherwise
from curate.testing import run_spec
from curate.testing.runner import read_step_output

BASE = {"url": ["http://e/0", "http://e/1"], "alt_text": ["a", "b"]}
COLUMNS = {
    "duration_s": pa.array([dt.timedelta(seconds=1), dt.timedelta(hours=1)], pa.duration("s")),
    "nested_duration": pa.array([{"d": dt.timedelta(seconds=60)}, None], pa.struct([("d", pa.duration("s"))])),
    "listed_duration": pa.array([[dt.timedelta(seconds=2)], []], pa.list_(pa.duration("s"))),
    "uuid": pa.array([uuid.UUID(int=7).bytes, None], pa.uuid()),
}


@pytest.mark.parametrize("column", [*COLUMNS, "int96"])
def test_columns_duckdb_reads_otherwise_come_out_as_polars_reads_them(pm, workdir, column):
    path = workdir / "d.parquet"
    if column == "int96":
        times = pa.array([1700000000123456789, -1], pa.timestamp("ns"))
        pq.write_table(pa.table({**BASE, "ts": times}), path, use_deprecated_int96_timestamps=True)
    else:
        pq.write_table(pa.table({**BASE, column: COLUMNS[column]}), path)
    assert _duckdb_reads_otherwise(path)
    out = read_step_output(run_spec({"source": {"path": "d.parquet"}}, workdir, pm=pm), "source")
    assert out.drop("uid").equals(pl.read_parquet(path))


def test_a_plain_file_is_still_read_in_place(workdir):
    path = workdir / "plain.parquet"
    pl.DataFrame({**BASE, "n": [1, 2], "t": [dt.datetime(2024, 1, 1)] * 2, "s": [[1.5], []]}).write_parquet(path)
    assert not _duckdb_reads_otherwise(path)
