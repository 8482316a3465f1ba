"""``exact_dedup``: one row per distinct key, with the survivor chosen by a keep policy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import polars as pl
from pydantic import Field, model_validator

from curate.duck import create_input_view, quote, stream
from curate.params import Params
from curate.schema import DROP_REASON, DUPLICATE_OF, UID, Schema
from curate.step import Step, StepContext, TableInput


class ExactDedupParams(Params):
    columns: list[str] = Field(..., min_length=1, description="the key: rows equal on all of these are duplicates")
    keep: Literal["first", "last", "max", "min"] = "first"
    order_by: str | None = Field(None, description="with keep max/min: the column to compare")
    ignore_case: bool = Field(False, description="compare text columns case-insensitively")
    nulls_equal: bool = Field(False, description="treat NULL keys as equal (default: never duplicates)")

    @model_validator(mode="after")
    def _order(self) -> ExactDedupParams:
        if self.keep in ("max", "min") and not self.order_by:
            raise ValueError(f"keep '{self.keep}' needs 'order_by': the column whose {self.keep} survives")
        if self.keep in ("first", "last") and self.order_by:
            raise ValueError("'order_by' only applies to keep max/min")
        return self


class ExactDedup(Step):
    """Ties under max/min go to the earliest row, so the survivor is always deterministic."""

    name = "exact_dedup"
    description = "drop exact duplicates on any columns (keep first/last/max/min)"
    scope = "table"
    drops_rows = True
    Params = ExactDedupParams

    def input_columns(self) -> Schema:
        cols: Schema = {c: pl.Null for c in self.params.columns}
        if self.params.order_by:
            cols[self.params.order_by] = pl.Null
        return cols

    def _key(self, column: str, schema: Schema) -> str:
        expr = quote(column)
        if self.params.ignore_case and schema.get(column) in (pl.Utf8, pl.String):
            expr = f"lower({expr})"
        return expr

    def process_table(self, table: TableInput, ctx: StepContext) -> Iterator[pl.DataFrame]:
        p = self.params
        keys = [self._key(c, table.schema) for c in p.columns]
        partition = ", ".join(keys)
        order = {
            "first": "_shard, _row",
            "last": "_shard DESC, _row DESC",
            "max": f"{quote(p.order_by or '')} DESC NULLS LAST, _shard, _row",
            "min": f"{quote(p.order_by or '')} ASC NULLS LAST, _shard, _row",
        }[p.keep]
        has_null = " OR ".join(f"{k} IS NULL" for k in keys)
        never_duplicate = "false" if p.nulls_equal else f"({has_null})"
        reason = self.label.replace("'", "''")
        con = ctx.duckdb()
        try:
            create_input_view(con, table)
            yield from stream(con, f"""
                WITH ranked AS (
                    SELECT *,
                           row_number() OVER (PARTITION BY {partition} ORDER BY {order}) AS _rank,
                           first_value({UID}) OVER (PARTITION BY {partition} ORDER BY {order}) AS _survivor
                    FROM input
                )
                SELECT * EXCLUDE (_rank, _survivor, _shard, _row),
                       CASE WHEN _rank = 1 OR {never_duplicate} THEN NULL ELSE '{reason}' END AS {DROP_REASON},
                       CASE WHEN _rank = 1 OR {never_duplicate} THEN NULL ELSE _survivor END AS {DUPLICATE_OF}
                FROM ranked ORDER BY _shard, _row
            """)
        finally:
            con.close()
