"""DuckDB's memory limit: a spec that sets none gets the engine's default on every table-step
connection (it bounds a run's memory whatever the table's size); a spec's own value wins."""

from __future__ import annotations

import errno
import json

import duckdb
import polars as pl

from curate.errors import ResourceError, StepError, resource_hint
from curate.spec import RunSpec
from curate.step import DEFAULT_MEMORY_LIMIT, StepContext


def _limit_of(con: duckdb.DuckDBPyConnection) -> str:
    return con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]


def _expected(value: str) -> str:
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit='{value}'")
        return _limit_of(con)
    finally:
        con.close()


def test_a_spec_without_a_memory_limit_gets_the_default_on_table_connections(tmp_path):
    run = RunSpec()
    assert run.memory_limit == DEFAULT_MEMORY_LIMIT == "256MB"
    ctx = StepContext(run_dir=tmp_path, label="t", seed=0, artifacts=tmp_path / "a", memory_limit=run.memory_limit)
    con = ctx.duckdb()
    try:
        assert _limit_of(con) == _expected("256MB")
    finally:
        con.close()


def test_a_spec_memory_limit_wins(tmp_path):
    ctx = StepContext(run_dir=tmp_path, label="t", seed=0, artifacts=tmp_path / "a",
                      memory_limit=RunSpec(memory_limit="1GB").memory_limit)
    con = ctx.duckdb()
    try:
        assert _limit_of(con) == _expected("1GB")
    finally:
        con.close()


def _out_of_memory() -> Exception:
    con = duckdb.connect()
    con.execute("SET memory_limit='1MB'")
    con.execute("SET temp_directory=''")  # nowhere to spill
    try:
        con.sql("SELECT count(DISTINCT i::VARCHAR || 'x') FROM range(2000000) t(i)").fetchall()
    except duckdb.OutOfMemoryException as exc:
        return exc
    finally:
        con.close()
    raise AssertionError("DuckDB did not run out of memory under 1MB without spilling")


def test_out_of_memory_in_a_step_names_the_step_and_the_fix():
    error = StepError.from_exception("exact_dedup", None, _out_of_memory())
    assert str(error).startswith("step 'exact_dedup' failed: OutOfMemoryException: Out of Memory Error")
    assert "SET memory_limit" not in error.message  # DuckDB's SQL advice is cut; the hint speaks of the spec
    assert "run.memory_limit" in error.hint and "memory_limit: 2GB" in error.hint


def test_a_full_disk_says_so_and_other_errors_keep_their_whole_message():
    full = StepError.from_exception("download", 3, OSError(errno.ENOSPC, "No space left on device"))
    assert full.hint is not None and "disk is full" in full.hint and "resumes" in full.hint
    bug = StepError.from_exception("mine", 1, ValueError("line one\nline two"))
    assert (bug.message, bug.hint) == ("step 'mine', shard 1 failed: ValueError: line one\nline two", None)
    assert resource_hint(ValueError("x")) is None and ResourceError.from_exception(KeyError("k")) is None


def test_a_run_out_of_duckdb_memory_exits_with_the_fix_not_an_internal_error(curate_cli, write_spec, workdir):
    table = pl.DataFrame({"url": [f"http://x/{i % 20_000}.jpg" for i in range(60_000)],
                          "alt_text": [f"alt text number {i % 15_000} " * 4 for i in range(60_000)]})
    write_spec({"name": "oom", "source": {"path": "data.parquet"},
                "steps": [{"step": "exact_dedup", "params": {"columns": ["url", "alt_text"]}}],
                "run": {"dir": "run", "memory_limit": "1MB", "report": False}}, table=table)
    result = curate_cli("run", "spec.yaml")
    assert result.code == 1, result
    assert "Out of Memory Error" in result.stderr and "hint:" in result.stderr and "run.memory_limit" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "run.memory_limit" in manifest["error"]
