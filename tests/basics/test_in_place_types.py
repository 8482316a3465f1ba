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


def test_files_polars_reads_with_one_schema_keep_their_own_types_in_place(pm, workdir):
    """Times in microseconds in one file and in nanoseconds in the next are both Polars' Time.
    DuckDB reads a list of files with the first one's types unless told to match them by name
    (which opens every file to bind): the second file's nanoseconds were cut. The in-place read
    takes the first file's types only where every footer holds one Parquet schema."""
    (workdir / "data").mkdir()
    micros = pa.table({**BASE, "t": pa.array([1_000_001, 2], pa.time64("us"))})
    nanos = pa.table({"url": ["http://e/2", "http://e/3"], "alt_text": ["c", "d"],
                      "t": pa.array([1_000_000_123, 3], pa.time64("ns"))})
    for name, table in (("p1.parquet", micros), ("p2.parquet", nanos)):
        pq.write_table(table, workdir / "data" / name)
        assert not _duckdb_reads_otherwise(workdir / "data" / name)
    out = read_step_output(run_spec({"source": {"path": "data"}}, workdir, pm=pm), "source")
    assert out["t"].to_list() == pl.read_parquet(workdir / "data")["t"].to_list()
    assert out["t"][2] == dt.time(0, 0, 1, 0) and out["t"].cast(pl.Int64)[2] == 1_000_000_123
