"""A path holding *, ? or [ is a file pattern to DuckDB's and Polars' Parquet readers, even in a
list of files: curate refuses a run directory or a source file with one before reading anything,
instead of reading other files as its own."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from curate.duck import literal

TABLE = pl.DataFrame({"url": ["https://a/0", "https://a/1"], "alt_text": ["a red circle", "a cat"]})


def test_why_the_readers_read_such_a_path_as_a_pattern(tmp_path):
    for folder in ("a1", "a?", "a[1]"):
        (tmp_path / folder).mkdir()
        TABLE.write_parquet(tmp_path / folder / "x.parquet")
    asked = (tmp_path / "a?" / "x.parquet").as_posix()
    read = duckdb.connect().sql(f"SELECT DISTINCT filename FROM read_parquet([{literal(asked)}], filename = true)")
    assert sorted(name for (name,) in read.fetchall()) == [(tmp_path / f / "x.parquet").as_posix() for f in ("a1", "a?")]
    assert pl.scan_parquet(asked).collect().height == 4  # both files' rows
    (tmp_path / "a1" / "x.parquet").unlink()
    with pytest.raises(pl.exceptions.ComputeError, match="expanded paths were empty"):  # "a[1]" is a1 to it
        pl.read_parquet(tmp_path / "a[1]" / "x.parquet")


@pytest.mark.parametrize("run_dir", ["runs[1]", "runs/a?b", "r*"])
def test_a_run_directory_read_as_a_pattern_is_refused(curate_main, write_spec, run_dir):
    write_spec({"name": "p", "source": {"path": "data.parquet"}, "steps": [], "run": {"dir": run_dir}}, table=TABLE)
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2 and "run.dir" in result.stderr, result
    assert "which DuckDB and Polars read as a file pattern" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_source_file_read_as_a_pattern_is_refused_and_a_pattern_in_source_path_is_not(
        curate_main, write_spec, workdir):
    (workdir / "data").mkdir()
    for name in ("x1", "x[1]"):
        TABLE.write_parquet(workdir / "data" / f"{name}.parquet")
    for path in ("data", "data/*.parquet"):  # a folder, and a pattern curate expands: both find x[1]
        write_spec({"name": "p", "source": {"path": path}, "steps": [], "run": {"dir": "run"}})
        result = curate_main("run", "spec.yaml", "--quiet")
        assert result.code != 0 and "which DuckDB and Polars read as a file pattern" in result.stderr, result
        assert "x[1].parquet holds '['" in result.stderr and "rename the file" in result.stderr
        assert "Traceback" not in result.stderr
    (workdir / "data" / "x[1].parquet").unlink()
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
