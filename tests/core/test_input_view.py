"""``create_input_view(file_index=True)``: ``_file`` is each row's shard position in the files,
whether DuckDB has a ``file_index`` column or curate falls back to a CASE over the file name."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import duck
from curate.duck import create_input_view
from curate.step import TableInput


@pytest.fixture(params=[True, False], ids=["file_index", "case"])
def file_index_support(request, monkeypatch):
    monkeypatch.setattr(duck, "_HAS_FILE_INDEX", {"on": request.param})
    return request.param


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(0, 5), min_size=1, max_size=12))
def test_file_is_the_position_of_the_shard_in_the_files(tmp_path_factory, file_index_support, sizes):
    where = tmp_path_factory.mktemp("shards")
    files = []
    for index, size in enumerate(sizes):
        path = where / f"shard-{index:05d}.parquet"
        pl.DataFrame({"uid": [f"{index}-{i}" for i in range(size)]}, schema={"uid": pl.Utf8}).write_parquet(path)
        files.append(path)
    con = duckdb.connect()
    try:
        create_input_view(con, TableInput(files, {"uid": pl.Utf8}), file_index=True)
        rows = con.sql("SELECT uid, _file, _row, _shard FROM input ORDER BY _file, _row").fetchall()
    finally:
        con.close()
    expected = [(f"{index}-{i}", index, i, files[index].as_posix()) for index, size in enumerate(sizes)
                for i in range(size)]
    assert rows == expected


def test_an_empty_input_has_a_file_column(file_index_support):
    con = duckdb.connect()
    try:
        create_input_view(con, TableInput([], {"uid": pl.Utf8}), file_index=True)
        assert con.sql("SELECT * FROM input").pl().schema["_file"] == pl.Int32
    finally:
        con.close()
