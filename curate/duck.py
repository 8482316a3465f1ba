"""Small helpers over DuckDB, so steps use one idiom across DuckDB versions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import polars as pl

from curate.schema import Schema
from curate.step import TableInput

ORDER_COLUMNS = ("_shard", "_row")

_local = threading.local()


def shard_connection() -> duckdb.DuckDBPyConnection:
    """This thread's in-memory connection for per-shard queries (filter, sample's draws).

    Opening a connection and registering a frame cost more than the query on a 100k-row
    shard; one per thread (a worker process has its own) is reused for every shard. Callers
    register their frames under names of their own and unregister them when done.
    """
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect()
    return con


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, table: Any) -> Iterator[str]:
    """``table`` visible as ``name`` for the block, unregistered after it (also on error)."""
    con.register(name, table)
    try:
        yield name
    finally:
        con.unregister(name)


def frame(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    return con.sql(sql).pl()


def stream(con: duckdb.DuckDBPyConnection, sql: str, batch_rows: int = 100_000) -> Iterator[pl.DataFrame]:
    """Run ``sql`` and yield its result as polars frames, without materialising it whole."""
    relation = con.sql(sql)
    if relation is None:
        return
    reader: Any
    if hasattr(relation, "to_arrow_reader"):
        reader = relation.to_arrow_reader(batch_rows)
    else:  # DuckDB < 1.4
        reader = relation.fetch_arrow_reader(batch_rows)
    for batch in reader:
        out = pl.from_arrow(batch)
        assert isinstance(out, pl.DataFrame)
        if out.height:
            yield out


def create_input_view(con: duckdb.DuckDBPyConnection, table: TableInput, name: str = "input") -> None:
    """A view over every shard with ``_shard``/``_row`` columns that give the input order."""
    if table.files:
        paths = ", ".join("'" + f.as_posix().replace("'", "''") + "'" for f in table.files)
        con.execute(
            f'CREATE OR REPLACE VIEW "{name}" AS SELECT * EXCLUDE (file_row_number), '
            f"file_row_number AS _row FROM read_parquet([{paths}], filename = '_shard', file_row_number = true)"
        )
    else:
        empty = pl.DataFrame(schema={**table.schema, "_shard": pl.Utf8, "_row": pl.Int64})
        con.register(f"{name}_empty", empty)
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM "{name}_empty"')


def bind(schema: Schema, sql: str, name: str = "input") -> Schema:
    """The schema ``sql`` would produce over a table with ``schema``, without any data.

    Raises ``duckdb.Error`` with DuckDB's own message (which names unknown columns and
    suggests candidates) when the query does not bind.
    """
    con = duckdb.connect()
    try:
        con.register(name, pl.DataFrame(schema=schema))
        return dict(con.sql(f"SELECT * FROM ({sql}) LIMIT 0").pl().schema)
    finally:
        con.close()


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def explain(error: Exception) -> str:
    """DuckDB's message on one line, keeping its 'Candidate bindings' suggestion."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    message = lines[0]
    for line in lines[1:]:
        if line.startswith("Candidate bindings") or line.startswith("Did you mean"):
            message += f" ({line.rstrip('.')})"
    return message
