"""DuckDB's memory limit: a spec that sets none gets the engine's default on every table-step
connection (it bounds a run's memory whatever the table's size); a spec's own value wins."""

from __future__ import annotations

import duckdb

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
