"""``sample``: a seeded fraction or count of rows, the same whatever the shard layout."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import polars as pl
from pydantic import Field, model_validator

from curate.duck import create_input_view, quote, stream
from curate.hashing import uniform, uniform_sql
from curate.params import Params
from curate.schema import DROP_REASON, UID
from curate.step import Step, StepContext, TableInput


class SampleParams(Params):
    fraction: float | None = Field(None, gt=0, le=1, description="keep each row with this probability")
    count: int | None = Field(None, ge=0, description="keep exactly this many rows (or all, if fewer)")
    by: str | None = Field(None, min_length=1, description="with count: keep `count` rows per value of this column")
    seed: int | None = Field(None, description="default: the run's seed")

    @model_validator(mode="after")
    def _one_of(self) -> SampleParams:
        if (self.fraction is None) == (self.count is None):
            raise ValueError("give exactly one of 'fraction' or 'count'")
        if self.by is not None and self.count is None:
            raise ValueError("'by' goes with 'count' (a fraction is already the same in every group)")
        return self


class Sample(Step):
    """Each row draws a number from (uid, seed); a fraction keeps draws below it, a count keeps
    the lowest draws. Deterministic, shard-independent, and stable across library versions."""

    name = "sample"
    thread_safe = True
    description = "seeded sample by fraction or count"
    drops_rows = True
    random = True
    Params = SampleParams

    @property
    def scope(self) -> Literal["shard", "table"]:  # type: ignore[override]
        return "shard" if self.params.fraction is not None else "table"  # a count needs every row

    def input_columns(self):
        cols = {UID: pl.Utf8}
        if self.params.by:
            cols[self.params.by] = pl.Null  # any type
        return cols

    def _seed(self, ctx: StepContext) -> int:
        return self.params.seed if self.params.seed is not None else ctx.seed

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        draws = uniform(table[UID], self._seed(ctx), salt="sample")
        keep = draws < self.params.fraction
        return table.with_columns(
            pl.when(pl.Series(keep)).then(pl.lit(None, pl.Utf8)).otherwise(pl.lit(self.label)).alias(DROP_REASON)
        )

    def process_table(self, table: TableInput, ctx: StepContext) -> Iterator[pl.DataFrame]:
        con = ctx.duckdb()
        try:
            create_input_view(con, table)
            draw = uniform_sql("uid", self._seed(ctx), salt="sample")
            partition = f"PARTITION BY {quote(self.params.by)} " if self.params.by else ""
            reason = self.label.replace("'", "''")
            yield from stream(con, f"""
                WITH ranked AS (
                    SELECT *, row_number() OVER ({partition}ORDER BY {draw}, uid) AS _rank FROM input
                )
                SELECT * EXCLUDE (_rank, _shard, _row),
                       CASE WHEN _rank <= {self.params.count} THEN NULL ELSE '{reason}' END AS {DROP_REASON}
                FROM ranked ORDER BY length(_shard), _shard, _row  -- shard-100000 after shard-99999
            """)
        finally:
            con.close()
