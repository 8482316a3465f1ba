"""Small helpers over DuckDB, so steps use one idiom across DuckDB versions."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import polars as pl

from curate.errors import CurateError
from curate.parquet_nan import read_option  # noqa: F401  (plugins take it from here)
from curate.schema import Schema
from curate.stopping import watch
from curate.step import TableInput

ORDER_COLUMNS = ("_shard", "_row")

_local = threading.local()

# DuckDB installs and loads a "known" extension the first time a query needs it: read_text('https://…')
# fetched httpfs from the network, even while a spec was only validated. curate needs none beyond
# the ones built in (parquet, json, icu), so no connection of curate's ever does either.
NO_AUTO_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


# DuckDB reads, writes and computes with TIMESTAMPTZ in its session's time zone, which it takes
# from the machine: the same spec gave other uids (a timestamp in the uid's content is its text),
# kept other rows (`CAST(ts AS DATE)`, `hour(ts)`) and wrote another time zone into the output on
# a machine set to New York than on one set to UTC. Every connection of curate's works in UTC.
TIME_ZONE = "UTC"


# DuckDB hands a query's result over in batches that end where a Parquet row group (or a block of
# a sort) ends when it runs on two threads or more, and in full batches on one thread; a stored
# shard's row groups follow those batches (curate.duck.stream). A machine with one core (or a
# container held to one, where DuckDB's default is one thread) stored other bytes, marker
# checksums and input digests than a laptop or a server, for the same rows. From two threads on
# the batches are the same (2, 3, 4, 8, 16 and 64 threads gave the same ones): every connection
# runs on two threads at least, which keeps the bytes runs on machines of two or more cores stored.
MIN_THREADS = 2


def connect(untrusted: bool = False, settings: dict[str, str] | None = None) -> duckdb.DuckDBPyConnection:
    """A new in-memory connection that never installs or loads an extension by itself, works
    in UTC (its cursors too) and runs on MIN_THREADS threads at least; ``untrusted``: with no
    external access either (no file, network or extension access); ``settings``: more of DuckDB's
    configuration, set as it opens.

    Plugins open DuckDB connections through this (or ``ctx.duckdb()``), never ``duckdb.connect``,
    so a signal stops their queries: the connection is interrupted when the run gets SIGINT,
    SIGTERM or SIGHUP (:func:`curate.stopping.watch`), where a query on a thread of a pool would
    otherwise run on until it ended. Take its cursors with :func:`cursor`, which are watched too."""
    con = duckdb.connect(config={**NO_AUTO_EXTENSIONS, **(settings or {}),
                                 **({"enable_external_access": False} if untrusted else {})})
    _in_utc(con, "GLOBAL")
    _at_least_threads(con, MIN_THREADS)
    return watch(con)


def _at_least_threads(con: duckdb.DuckDBPyConnection, threads: int) -> None:
    if con.execute("SELECT current_setting('threads')").fetchall()[0][0] < threads:
        con.execute(f"SET GLOBAL threads = {threads}")


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor of ``con`` (a connection of its own to the same database), stopped with the run as
    ``con`` is: interrupting ``con`` leaves its cursors' queries running, so ``con.cursor()``
    gives a cursor whose query a signal does not stop; use this instead."""
    return watch(con.cursor())


def default_cursor() -> duckdb.DuckDBPyConnection:
    """A cursor of the process's default connection, which is told once not to fetch extensions;
    the cursor works in UTC (the default connection itself is left as its owner set it)."""
    default = duckdb.default_connection()
    if getattr(_local, "default_set", None) is not default:
        for name, value in NO_AUTO_EXTENSIONS.items():
            default.execute(f"SET {name} = {str(value).lower()}")
        _local.default_set = default
    return _in_utc(cursor(default), "SESSION")


def _in_utc(con: duckdb.DuckDBPyConnection, scope: str) -> duckdb.DuckDBPyConnection:
    try:
        con.execute(f"SET {scope} TimeZone = '{TIME_ZONE}'")
    except duckdb.Error:  # a DuckDB built without ICU: it has no time zones, TIMESTAMPTZ is UTC
        pass
    return con


def shard_connection(untrusted: bool = False, ctx: Any = None) -> duckdb.DuckDBPyConnection:
    """This thread's in-memory connection for per-shard queries (filter, sample's draws).

    Opening a connection and registering a frame cost more than the query on a 100k-row
    shard; one per thread (a worker process has its own) is reused for every shard. Callers
    register their frames under names of their own and unregister them when done.

    ``untrusted``: a separate connection with external access disabled (no file, network or
    extension access), for SQL written by someone else (``run.untrusted`` / ``--untrusted``).
    ``ctx``: the step's ``StepContext``: the connection then keeps to ``run.memory_limit`` and
    spills to the run's ``tmp/duckdb`` (without it DuckDB takes up to 80 % of the machine's memory,
    a filter of a 64MB run used 1.07 GB, and spills to ``.tmp`` in the working directory).
    """
    attribute = "locked_con" if untrusted else "con"
    cached = getattr(_local, attribute, None)
    run = (ctx.memory_limit, ctx.run_dir) if ctx is not None else None
    if cached is None or (run is not None and cached[1] != run):
        if cached is not None:
            cached[0].close()
        if ctx is None:
            con = connect(untrusted)
        else:
            from curate.step import memory_setting

            spill = ctx.run_dir / "tmp" / "duckdb"
            spill.mkdir(parents=True, exist_ok=True)
            # set as it opens, and external access disabled after: DuckDB refuses a temp_directory
            # to a connection without it
            con = connect(False, {"memory_limit": memory_setting(ctx.memory_limit), "temp_directory": spill.as_posix()})
            if untrusted:
                lock_down(con, [spill])
        cached = (con, run)
        setattr(_local, attribute, cached)
    return cached[0]


def lock_down(con: duckdb.DuckDBPyConnection, allowed: list[Any] = ()) -> duckdb.DuckDBPyConnection:
    """Disable external access on ``con`` for good, except reads under the ``allowed`` directories
    (the run's own shard files and spill directory). Used before running untrusted SQL."""
    if allowed:
        dirs = ", ".join(literal(str(d).rstrip("/") + "/") for d in allowed)
        con.execute(f"SET allowed_directories = [{dirs}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


UNTRUSTED_SQL_SECONDS = 600.0  # one query of a spec from someone else (run.untrusted) runs at most this long


class SQLTimeLimit(CurateError):
    """A user's SQL query ran past its time limit (``run.sql_timeout``, or the untrusted bound)."""

    exit_code = 2


def sql_seconds(limit: float | None, untrusted: bool) -> float | None:
    """The time one user SQL query may run: the spec's ``run.sql_timeout``; for an untrusted spec
    at most UNTRUSTED_SQL_SECONDS, whatever it sets (a stranger's cross join ran until killed)."""
    if untrusted:
        return min(limit, UNTRUSTED_SQL_SECONDS) if limit is not None else UNTRUSTED_SQL_SECONDS
    return limit


@contextmanager
def time_limit(con: duckdb.DuckDBPyConnection, seconds: float | None, what: str) -> Iterator[None]:
    """Interrupt ``con``'s query after ``seconds`` (None: no limit); a query interrupted so is a
    :class:`SQLTimeLimit` naming ``what``. An interrupt that lands after the query finished is
    harmless (DuckDB ignores it on an idle connection)."""
    if seconds is None:
        yield
        return
    timer = threading.Timer(seconds, con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    except duckdb.InterruptException:
        raise SQLTimeLimit(f"{what} ran longer than its limit of {seconds:g} s and was stopped",
                           "make the query cheaper, or raise run.sql_timeout (an untrusted spec's queries "
                           f"stop at {UNTRUSTED_SQL_SECONDS:g} s; run it trusted if you trust it)") from None
    finally:
        timer.cancel()


class UnsafeSQL(ValueError):
    """User SQL that is not one plain query (several statements, COPY, ATTACH, SET...)."""


def check_query(sql: str) -> None:
    """Refuse anything but exactly one SELECT statement, by parsing only (nothing runs).

    ``con.sql`` runs every statement before the last, so ``…; COPY (…) TO 'x'`` in a filter's
    ``where`` wrote files even in ``curate validate``."""
    statements = duckdb.extract_statements(sql)  # a syntax error raises duckdb's own ParserException
    if len(statements) != 1:
        raise UnsafeSQL(f"must be a single query, found {len(statements)} SQL statements (is there a ';'?)")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        # DuckDB's statement types are coarser than its keywords: INSTALL parses as LOAD, and a
        # PIVOT statement as MULTI (it expands to several).
        said = {"LOAD": "an INSTALL or LOAD", "MULTI": "a PIVOT (or other multi-part)"}.get(kind.name, f"a {kind.name}")
        raise UnsafeSQL(f"must be a SELECT query, found {said} statement")
    _check_depth(sql)


def check_expression(expression: str) -> None:
    """Refuse anything but one SQL expression (no ``)``-escapes into a second statement)."""
    try:
        duckdb.SQLExpression(expression)
    except duckdb.Error as exc:
        raise UnsafeSQL(f"not a single SQL expression: {explain(exc)}") from None
    _check_depth(f"SELECT ({expression}\n) FROM input")


# Levels of DuckDB's parse tree (as JSON, ~3 per level of the SQL: abs(abs(…)) 100 deep is 309) a
# query may have: curate reads the tree in Python (curate.sqltree), whose stack ends near 1,000,
# and a 2.4 kB `where` nested 400 deep was an internal RecursionError.
MAX_TREE_DEPTH = 600


def _check_depth(sql: str) -> None:
    if _too_deep(sql):
        raise UnsafeSQL(f"is nested too deep for curate to check (more than ~{MAX_TREE_DEPTH // 3} levels of "
                        "functions, operators or parentheses): write it flatter, e.g. a CASE or IN list instead of "
                        "nested calls") from None


@functools.lru_cache(maxsize=256)
def parse_tree_text(sql: str) -> str:
    """DuckDB's parse tree of ``sql`` as JSON text (``json_serialize_sql``: nothing is bound or
    run). Once per text and process: the depth check here and each reading of :mod:`curate.sqltree`
    ask for the same query's tree, and the steps check their SQL again on every shard, from many
    threads (so a connection of its own, never the shared default one). Raises ``duckdb.Error``."""
    con = connect()
    try:
        return con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0]
    finally:
        con.close()


@functools.lru_cache(maxsize=256)
def _too_deep(sql: str) -> bool:
    """Whether ``sql``'s parse tree is deeper than MAX_TREE_DEPTH."""
    try:
        text = parse_tree_text(sql)
    except duckdb.Error:
        return False  # what does not parse is the binder's to explain
    try:
        return _depth(json.loads(text)) > MAX_TREE_DEPTH
    except RecursionError:
        return True


def _depth(tree: Any) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, dict):
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
    return deepest


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, table: Any) -> Iterator[str]:
    """``table`` visible as ``name`` for the block, unregistered after it (also on error)."""
    con.register(name, table)
    try:
        yield name
    finally:
        con.unregister(name)


_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}


def memory_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """The connection's memory limit in bytes (DuckDB reports it rounded, like '244.1 MiB'); 0
    when it reports it in a form this does not know."""
    value = con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
    number, _, unit = str(value).partition(" ")
    try:
        return int(float(number) * _UNITS[unit or "bytes"])
    except (ValueError, KeyError):
        return 0


def frame(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    return con.sql(sql).pl()


def stream(con: duckdb.DuckDBPyConnection, sql: str, batch_rows: int = 100_000) -> Iterator[pl.DataFrame]:
    """Run ``sql`` and yield its result as polars frames of about ``batch_rows`` rows each,
    without materialising it whole.

    DuckDB ends a batch where a file ends, so a scan of 2,000 small Parquet files came as 2,000
    frames of 10 rows, and each frame's fixed cost (~5 ms through the source step) made the
    read 16 s for 20,000 rows; batches are gathered into frames of ``batch_rows`` first."""
    relation = con.sql(sql)
    if relation is None:
        return
    reader: Any
    if hasattr(relation, "to_arrow_reader"):
        reader = relation.to_arrow_reader(batch_rows)
    else:  # DuckDB < 1.4
        reader = relation.fetch_arrow_reader(batch_rows)
    pending: list[Any] = []
    rows = 0
    for batch in reader:
        if batch.num_rows:
            pending.append(batch)
            rows += batch.num_rows
        if rows >= batch_rows:
            yield _frame_of(pending, reader.schema)
            pending, rows = [], 0
    if pending:
        yield _frame_of(pending, reader.schema)


def _frame_of(batches: list[Any], schema: Any) -> pl.DataFrame:
    """One frame of ``batches``, each batch a chunk of it (a shard's row groups follow the chunks
    of the frames it is made of). Several go to Polars as one Arrow stream: ``pl.from_arrow`` of
    a table handed Polars each batch as a Python object (~40 us a batch: 0.4 s of a source of
    10,000 small files, read as a batch a file)."""
    import pyarrow as pa

    if len(batches) == 1:
        out = pl.from_arrow(batches[0])
    elif all(_streamed(field.type) for field in schema):
        out = pl.DataFrame(pa.RecordBatchReader.from_batches(schema, batches))
    else:  # a type Polars does not import (a union, an interval) made the stream panic, not raise
        out = pl.from_arrow(pa.Table.from_batches(batches, schema=schema))
    assert isinstance(out, pl.DataFrame)
    return out


def _streamed(dtype: Any) -> bool:
    """Whether Polars imports ``dtype`` from an Arrow stream as it does from a table: numbers,
    text, bytes, times and decimals, in lists and structs."""
    import pyarrow as pa

    t = pa.types
    if t.is_list(dtype) or t.is_large_list(dtype) or t.is_fixed_size_list(dtype):
        return _streamed(dtype.value_type)
    if t.is_struct(dtype):
        return all(_streamed(dtype.field(i).type) for i in range(dtype.num_fields))
    plain = (t.is_integer, t.is_floating, t.is_boolean, t.is_null, t.is_string, t.is_large_string,
             t.is_string_view, t.is_binary, t.is_large_binary, t.is_binary_view, t.is_fixed_size_binary,
             t.is_date32, t.is_timestamp, t.is_time, t.is_decimal, t.is_duration)
    return any(check(dtype) for check in plain) and not isinstance(dtype, pa.BaseExtensionType)


def create_input_view(con: duckdb.DuckDBPyConnection, table: TableInput, name: str = "input",
                      file_index: bool = False) -> None:
    """A view over every shard with ``_shard``/``_row`` columns that give the input order.

    With ``file_index`` it also has ``_file``, the shard's position in ``table.files`` (INTEGER):
    a query that sorts or keys rows by their position carries 4 bytes instead of the shard's
    path (a 100-byte string in every row of the sort, which held 8M duplicates at 100M rows)."""
    if table.files:
        paths = [literal(f.as_posix()) for f in table.files]
        extra = ""
        if file_index:
            extra = f", CAST({_file_index_sql(con, paths)} AS INTEGER) AS _file"
        con.execute(
            f'CREATE OR REPLACE VIEW "{name}" AS SELECT * EXCLUDE (file_row_number), '
            f"file_row_number AS _row{extra} FROM read_parquet([{', '.join(paths)}], filename = '_shard', "
            f"file_row_number = true{read_option()})"
        )
    else:
        extra = {"_file": pl.Int32} if file_index else {}
        empty = pl.DataFrame(schema={**table.schema, "_shard": pl.Utf8, "_row": pl.Int64, **extra})
        con.register(f"{name}_empty", empty)
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM "{name}_empty"')


_HAS_FILE_INDEX: dict[str, bool] = {}


def _file_index_sql(con: duckdb.DuckDBPyConnection, paths: list[str]) -> str:
    return file_position_sql("_shard", paths, con)


def file_position_sql(column: str, paths: list[str], con: duckdb.DuckDBPyConnection | None = None) -> str:
    """Each row's file position in ``paths`` (a ``read_parquet`` over that list, ``column``
    naming its file): DuckDB's ``file_index`` virtual column where it has one (1.3+), else a CASE
    over the file name, one comparison per file for every row (0.4 ms a row over 2,000 files)."""
    if "on" not in _HAS_FILE_INDEX:
        probe = con or connect()
        try:
            probe.sql(f"SELECT file_index FROM read_parquet([{paths[0]}]) LIMIT 0").fetchall()
            _HAS_FILE_INDEX["on"] = True
        except duckdb.Error:
            _HAS_FILE_INDEX["on"] = False
        finally:
            if con is None:
                probe.close()
    if _HAS_FILE_INDEX["on"]:
        return "file_index"
    return position_case(column, paths)


def position_case(column: str, paths: list[str]) -> str:
    """SQL giving each path literal's position in ``paths`` for the file name in ``column``."""
    return f"CASE {column} " + " ".join(f"WHEN {p} THEN {i}" for i, p in enumerate(paths)) + " END"


def missing_number(column: str) -> str:
    """SQL true where the number ``column`` (SQL) is NULL or NaN. Not ``isnan()``: DuckDB 2.0 folds
    it to false from a Parquet file's min/max statistics, which leave NaN out by the format's rule
    (a column of 0.1, NaN, 0.9 said isnan false on every row); the text of the value is not folded."""
    return f"({column} IS NULL OR CAST({column} AS VARCHAR) IN ('nan', '-nan'))"


def bind(schema: Schema, sql: str, name: str = "input", untrusted: bool = False) -> Schema:
    """The schema ``sql`` would produce over a table with ``schema``, without any data.

    Only a single SELECT is bound (:func:`check_query`, raising :class:`UnsafeSQL`), so
    validating or planning a spec never writes, attaches or configures anything. With
    ``untrusted`` the connection has no external access either (no file or network reads).
    Raises ``duckdb.Error`` with DuckDB's own message (which names unknown columns and
    suggests candidates) when the query does not bind.
    """
    check_query(sql)
    # A cursor of the default connection (which check_query has just opened) sees only what it
    # registers; a database of its own cost ~12 ms of CPU per SQL step of every validate and run.
    con = connect(untrusted=True) if untrusted else default_cursor()
    try:
        con.register(name, pl.DataFrame(schema=schema))
        # the newline ends a trailing "-- comment", which would swallow the closing parenthesis
        result = con.sql(f"SELECT * FROM ({sql}\n) LIMIT 0")
        # Polars cannot read back an INTERVAL (what a Duration column is in DuckDB): its reader panicked
        if intervals := [c for c, kind in zip(result.columns, map(str, result.types)) if "INTERVAL" in kind]:
            raise duckdb.InvalidInputException(
                f"its result column {', '.join(repr(c) for c in intervals)} is an INTERVAL, which Polars cannot read "
                f"back (a Duration column passes through DuckDB as one, and SQL over durations is not "
                f"supported): leave it out (SELECT * EXCLUDE ({quote(intervals[0])}) …) and keep it in a "
                f"step that does not use SQL")
        return dict(result.pl().schema)
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
