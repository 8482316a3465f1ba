"""A Parquet footer is read once per file version (``curate.footers``), and again once the file
changes: a source rewritten between two reads of one process gives its new schema."""

from __future__ import annotations

import os

import polars as pl

from curate.footers import arrow_metadata, polars_schema


def test_a_footer_is_read_again_once_the_file_changes(tmp_path):
    path = tmp_path / "d.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(path)
    assert polars_schema(path) == {"a": pl.Int64}
    assert arrow_metadata(path).num_rows == 1
    stat = path.stat()
    pl.DataFrame({"a": ["x"], "b": [1.5]}).write_parquet(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the old mtime, as `cp -p` or rsync leave it
    assert polars_schema(path) == {"a": pl.String, "b": pl.Float64}
    assert arrow_metadata(path).num_rows == 1 and arrow_metadata(path).num_columns == 2


def test_a_schema_handed_out_is_a_copy(tmp_path):
    path = tmp_path / "d.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(path)
    polars_schema(path)["z"] = pl.Int8
    assert polars_schema(path) == {"a": pl.Int64}


def test_what_pyarrow_cannot_read_is_none(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"not parquet")
    assert arrow_metadata(path) is None
