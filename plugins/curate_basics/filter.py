"""``filter``: keep rows where a DuckDB boolean expression holds; record why the others went."""

from __future__ import annotations

import duckdb
import polars as pl
from pydantic import Field

from curate.duck import UnsafeSQL, bind, check_expression, cursor, explain, shard_connection, time_limit
from curate.errors import StepError
from curate.params import Params
from curate.schema import DROP_REASON, Schema
from curate.sqltree import not_row_local, untrusted_reads_problem, warn_unrepeatable
from curate.step import Step, StepContext


class FilterParams(Params):
    where: str = Field(..., min_length=1, description="DuckDB boolean expression, e.g. length(alt_text) >= 5")
    reason: str | None = Field(None, description="drop reason to record (default: the step's label)")
    keep_null: bool = Field(False, description="keep rows where the expression is NULL")


class Filter(Step):
    """Row-local filter. A NULL result drops the row unless ``keep_null`` (SQL's WHERE semantics)."""

    name = "filter"
    thread_safe = True
    description = "keep rows matching a DuckDB boolean expression"
    drops_rows = True
    Params = FilterParams

    def plan_check_params(self) -> list[str]:
        try:
            check_expression(self.params.where)
        except UnsafeSQL as exc:
            return [f"'where' {exc}"]
        if (why := not_row_local(self.params.where)) is not None:
            return [f"'where' holds {why}: a filter decides each row on its own, shard by shard (a window "
                    "or aggregate would see one shard, not the table); use an sql step for a table-wide rule"]
        where = f"SELECT ({self.params.where}\n) FROM input"
        if self.untrusted and (problem := untrusted_reads_problem("'where'", where)):
            return [problem]
        return []

    def plan_check(self, input_schema: Schema) -> list[str]:
        if problems := self.plan_check_params():
            return problems
        try:
            out = bind(input_schema, f"SELECT ({self.params.where}\n) AS _keep FROM input", untrusted=self.untrusted)
        except UnsafeSQL as exc:
            return [f"'where' {exc}"]
        except duckdb.Error as exc:
            return [f"'where' does not run on the input table: {explain(exc)}"]
        if out["_keep"] != pl.Boolean:
            return [f"'where' must be a boolean expression, it gives {out['_keep']}"]
        warn_unrepeatable(self.label, "its 'where'", f"SELECT ({self.params.where}\n) FROM input")
        return []

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        fallback = "true" if self.params.keep_null else "false"
        # Only the verdict comes back from DuckDB, in the input's order (a projection keeps it):
        # sending every column through DuckDB and back took twice as long on web text.
        # A cursor of this thread's connection has its own `input`, so steps and threads
        # never see each other's.
        check_expression(self.params.where)  # planning refused it already; never run a second statement
        con = cursor(shard_connection(self.untrusted, ctx))
        try:
            con.register("input", table)
            with time_limit(con, self.sql_timeout, f"the where of step '{self.label}'"):
                keep = con.sql(f"SELECT coalesce(({self.params.where}\n), {fallback}) AS _keep FROM input").pl()["_keep"]
        finally:
            con.close()
        if keep.len() != table.height:  # planning refuses what is not row-local; never line up a wrong count
            raise StepError(self.label, ctx.shard, f"'where' gave {keep.len()} verdicts for {table.height} rows: it "
                            "must decide each row on its own (no aggregate, window or subquery)")
        reason = pl.when(keep).then(pl.lit(None, pl.Utf8)).otherwise(pl.lit(self.params.reason or self.label))
        return table.with_columns(reason.alias(DROP_REASON))
