"""``sql``: any DuckDB query over the current table, which is called ``input``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import duckdb
import polars as pl
from pydantic import Field

from curate.duck import (
    UnsafeSQL,
    bind,
    check_query,
    create_input_view,
    cursor,
    explain,
    lock_down,
    shard_connection,
    stream,
    time_limit,
)
from curate.params import Params
from curate.schema import DROP_REASON, UID, Schema, nested_types, restorable
from curate.sqltree import query_not_row_local, query_order, untrusted_reads_problem, warn_unrepeatable
from curate.step import Step, StepContext, TableInput


class SqlParams(Params):
    query: str = Field(..., min_length=1, description="one DuckDB SELECT over the table `input`; must keep `uid`. "
                       "It may read files (read_csv…) unless the run is --untrusted")
    per_shard: bool = Field(False, description="run the query shard by shard; it must be a row-local "
                            "SELECT … FROM input WHERE … (no join, subquery over the table, aggregate, window, "
                            "DISTINCT, ORDER BY or LIMIT: refused)")
    drop_reason: str = Field("sql", min_length=1, description="reason recorded for input rows the query leaves out")


class Sql(Step):
    """Arbitrary DuckDB SQL. Rows the query leaves out are recorded as dropped, not lost.

    The rows come in the input's order unless the query ends in an ORDER BY of its own (then in
    that order; end it with ``uid`` so that ties too come the same way every run). DuckDB hands a
    join's, a ``DISTINCT``'s, a ``QUALIFY``'s or an ``IN (SELECT …)``'s rows back in a different
    order from run to run, and a later ``exact_dedup keep: first`` or ``sample count:`` then kept
    different rows: such results are put back in the input's order (``curate.sqltree.query_order``).

    The query runs with the user's rights: DuckDB SQL can read files (``read_csv``), fetch URLs
    and load extensions. It must be a single SELECT (checked by parsing, at plan time and before
    each run), and with ``run.untrusted`` / ``--untrusted`` it runs with external access disabled,
    seeing only the run's own tables.
    """

    name = "sql"
    version = "2"  # 2: rows in the input's order unless the query orders them
    thread_safe = True
    description = "any DuckDB query over the table `input`"
    Params = SqlParams

    @property
    def scope(self) -> Literal["shard", "table"]:  # type: ignore[override]
        return "shard" if self.params.per_shard else "table"

    def _query(self) -> str:
        return self.params.query.strip().rstrip(";")

    def plan_check_params(self) -> list[str]:
        try:
            check_query(self._query())
        except UnsafeSQL as exc:
            return [f"the query {exc}"]
        if self.untrusted and (problem := untrusted_reads_problem("the query", self._query())):
            return [problem]
        return self._per_shard_problems()

    def _per_shard_problems(self) -> list[str]:
        if self.params.per_shard and (why := query_not_row_local(self._query())) is not None:
            return [f"per_shard: true runs the query on each shard alone, but it has {why}, which would see one "
                    "shard, not the table (and give other rows with another shard size): drop per_shard, or keep "
                    "the query to SELECT … FROM input WHERE … of row-wise expressions"]
        return []

    def plan_check(self, input_schema: Schema) -> list[str]:
        try:
            out = bind(input_schema, self._query(), untrusted=self.untrusted)
        except UnsafeSQL as exc:
            return [f"the query {exc}"]
        except duckdb.Error as exc:
            return [f"the query does not run on the input table: {explain(exc)}"]
        if self.untrusted and (problem := untrusted_reads_problem("the query", self._query())):
            return [problem]
        if UID not in out:
            return ["the query's result has no 'uid' column: select it (e.g. SELECT uid, ... FROM input)"]
        if out[UID] not in (pl.Utf8, pl.String):
            return [f"the query's 'uid' column is {out[UID]}, not text: select the input's uid as it is"]
        if problems := self._per_shard_problems():
            return problems
        warn_unrepeatable(self.label, "its query", self._query())
        return []

    def output_schema(self, input_schema: Schema) -> Schema:
        try:
            out = bind(input_schema, self._query(), untrusted=self.untrusted)
        except (duckdb.Error, UnsafeSQL):
            return dict(input_schema)
        # an ENUM the query makes comes out as text (how a categorical source column is read too)
        out = {name: pl.Utf8 if isinstance(dtype, (pl.Categorical, pl.Enum)) else dtype for name, dtype in out.items()}
        # A column the query passes on keeps its input type where DuckDB's is only its own way of
        # holding it: a timestamp's zone and unit, a duration's unit, a fixed-size array (DuckDB
        # made a Paris column UTC and an embedding array a list; the engine casts them back).
        return {name: input_schema[name] if name in input_schema and _kept_as_is(dtype, input_schema[name]) else dtype
                for name, dtype in out.items()}

    def _mark_dropped(self, source: str, order: tuple[str, ...]) -> str:
        """Input rows the query left out, with the drop reason, in the input's order (``order``:
        columns of ``source`` that give it). The order must be explicit: DuckDB's anti-join does
        not keep its probe side's order when several threads scan the input, as they do a frame
        of several chunks (a fused group hands its shards over in memory, unrechunked), so a
        dropped shard's rows came in a different order from run to run."""
        reason = self.params.drop_reason.replace("'", "''")
        columns = ", ".join(order)
        return (f"SELECT * EXCLUDE ({columns}), '{reason}' AS {DROP_REASON} FROM {source} "
                f"WHERE uid NOT IN (SELECT uid FROM _result WHERE uid IS NOT NULL) ORDER BY {columns}")

    def lineage_problem(self, lost: int, invented: int, repeated: int, example: str | None) -> tuple[str, str] | None:
        """The engine's lineage check failed: it was the query (not the plugin) that changed or
        repeated a uid."""
        problems = []
        if invented:
            problems.append(f"the query returned {invented} row{'s' if invented != 1 else ''} whose uid is not an "
                            f"input row's (e.g. {example!r}): it changed uid")
        if repeated:
            problems.append(f"the query returned {repeated} uid{'s' if repeated != 1 else ''} more than once: "
                            "it duplicated rows (a JOIN or UNION ALL that matches a row twice?)")
        if not problems:
            return None
        return ("; ".join(problems), "select uid from input unchanged (put a computed id in another column) and "
                "return each input row at most once (SELECT DISTINCT, or fix the join); rows the query leaves out "
                "are recorded as dropped")

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        check_query(self._query())  # planning refused it already; never run a second statement
        con = cursor(shard_connection(self.untrusted, ctx))  # its own `input` and `_result`, closed below
        try:
            con.register("input", table)
            with time_limit(con, self.sql_timeout, f"the query of step '{self.label}'"):
                result = _enums_as_text(con.sql(self._query()).pl())
            con.register("_result", result)
            row = "_row"  # the input's order, in a column of a name the input does not use
            while row in table.columns:
                row = "_" + row
            con.register("_input_rows", table.with_row_index(row))
            dropped = con.sql(self._mark_dropped("_input_rows", (row,))).pl()
        finally:
            con.close()
        if dropped.height == 0:
            return result
        return pl.concat([result, dropped], how="diagonal_relaxed")

    def process_table(self, table: TableInput, ctx: StepContext) -> Iterator[pl.DataFrame]:
        check_query(self._query())
        con = ctx.duckdb()
        try:
            if self.untrusted:  # only the run's own files stay readable
                lock_down(con, sorted({f.parent for f in table.files} | {ctx.run_dir / "tmp"}))
            create_input_view(con, table, "_input_ordered", file_index=True)
            con.execute('CREATE VIEW input AS SELECT * EXCLUDE (_shard, _row, _file) FROM _input_ordered')
            with time_limit(con, self.sql_timeout, f"the query of step '{self.label}'"):
                con.execute(f"CREATE TEMP TABLE _result AS {self._query()}\n")
            rows = "SELECT * FROM _result"
            if query_order(self._query()) == "unordered" and UID in _columns(con, "_result"):
                # the input's order (a uid the query made up, which the engine then refuses, last)
                rows = ("SELECT r.* FROM _result r LEFT JOIN (SELECT uid AS _uid, _file AS _f, _row AS _r "
                        "FROM _input_ordered) p ON r.uid = p._uid ORDER BY p._f NULLS LAST, p._r")
            yield from map(_enums_as_text, stream(con, rows))
            yield from stream(con, self._mark_dropped("_input_ordered", ("_file", "_row", "_shard")))
        finally:
            con.close()


def _kept_as_is(bound: pl.DataType, given: pl.DataType) -> bool:
    """``bound`` (DuckDB's type of a result column) is the input column's ``given`` type as DuckDB
    holds it, categoricals aside (an sql step's categoricals and enums are text, as documented)."""
    categorical = any(isinstance(inner, (pl.Categorical, pl.Enum)) for inner in nested_types(given))
    return bound != given and not categorical and restorable(bound, given)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [column[0] for column in con.execute(f"SELECT * FROM {table} LIMIT 0").description]


def _enums_as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """An ENUM (a categorical) the query made, as text: what the plan says (output_schema)."""
    enums = [name for name, dtype in frame.schema.items() if isinstance(dtype, (pl.Categorical, pl.Enum))]
    return frame.with_columns(pl.col(enums).cast(pl.Utf8)) if enums else frame
