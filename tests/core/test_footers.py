"""A Parquet footer is read once per file version (``curate.footers``), and again once the file
changes: a source rewritten between two reads of one process gives its new schema."""

from __future__ import annotations

import os

import polars as pl

from curate.footers import arrow_footer, polars_schema


def test_a_footer_is_read_again_once_the_file_changes(tmp_path):
    path = tmp_path / "d.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(path)
    assert polars_schema(path) == {"a": pl.Int64}
    assert arrow_footer(path).rows == 1
    stat = path.stat()
    pl.DataFrame({"a": ["x"], "b": [1.5]}).write_parquet(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the old mtime, as `cp -p` or rsync leave it
    assert polars_schema(path) == {"a": pl.String, "b": pl.Float64}
    assert arrow_footer(path).rows == 1
    pl.DataFrame({"a": ["x", "y"]}).write_parquet(path)  # same size? a new version all the same
    assert arrow_footer(path).rows == 2


def test_a_schema_handed_out_is_a_copy(tmp_path):
    path = tmp_path / "d.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(path)
    polars_schema(path)["z"] = pl.Int8
    assert polars_schema(path) == {"a": pl.Int64}


def test_what_pyarrow_cannot_read_is_none(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"not parquet")
    assert arrow_footer(path) is None


def test_the_footer_facts_find_zones_and_what_duckdb_reads_otherwise_at_any_depth(tmp_path):
    """One walker of pyarrow types (it was two, one missing maps): zones for the Polars check, and
    the types DuckDB reads as other values (a duration, an extension type, a date64)."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    stamp = pa.timestamp("us", tz="Asia/Kathmandu")
    table = pa.table({
        "plain": pa.array([1], pa.int64()),
        "nested": pa.array([[{"at": dt.datetime(2020, 1, 1)}]], pa.list_(pa.struct([("at", stamp)]))),
        "mapped": pa.array([[("k", dt.timedelta(seconds=3))]], pa.map_(pa.string(), pa.duration("s"))),
    })
    pq.write_table(table, tmp_path / "d.parquet")
    footer = arrow_footer(tmp_path / "d.parquet")
    assert footer.zones == (("nested", "Asia/Kathmandu"),) and footer.duckdb_differs
    pq.write_table(table.select(["plain"]), tmp_path / "p.parquet")
    assert not arrow_footer(tmp_path / "p.parquet").duckdb_differs and arrow_footer(tmp_path / "p.parquet").zones == ()


def test_polars_reads_one_footer_of_each_schema(tmp_path, monkeypatch):
    """Polars' schema of one file stands for every file whose footer holds its schema (pyarrow
    reads every footer, once): Polars read each footer again, ~0.16 ms a file. A Categorical is
    text in Parquet and a dictionary in the Arrow schema Polars stores: such a file's Parquet
    schema is a String's, and it keeps its own."""
    import pyarrow.parquet as pq

    from curate import footers

    monkeypatch.setattr(footers, "_BY_DIGEST", {}, raising=False)
    read = []
    real = pl.read_parquet_schema
    monkeypatch.setattr(pl, "read_parquet_schema", lambda path: read.append(path) or real(path))
    for index in range(4):
        pl.DataFrame({"a": [index], "b": ["x"]}).write_parquet(tmp_path / f"{index}.parquet")
    pl.DataFrame({"a": [1], "b": ["x"]}, schema={"a": pl.Int64, "b": pl.Categorical}).write_parquet(
        tmp_path / "categorical.parquet")
    bare = pl.DataFrame({"a": [1], "b": ["x"]}).to_arrow()
    pq.write_table(bare, tmp_path / "bare.parquet", store_schema=False)
    schemas = [polars_schema(tmp_path / f"{index}.parquet") for index in range(4)]
    assert schemas == [{"a": pl.Int64, "b": pl.String}] * 4
    assert polars_schema(tmp_path / "categorical.parquet") == {"a": pl.Int64, "b": pl.Categorical}
    assert polars_schema(tmp_path / "bare.parquet") == {"a": pl.Int64, "b": pl.String}
    assert len(read) == 3
