"""``clip_filter``: keep rows by CLIP score — an absolute threshold, a top fraction (DataComp's
best simple baseline keeps the top 30 %), or a quantile within each group of a column.

The threshold actually used (per group for quantiles) goes into the manifest's step summary.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Literal

import polars as pl
from pydantic import Field, model_validator

from curate.duck import create_input_view, literal, missing_number, quote, stream
from curate.params import Params
from curate.schema import DROP_REASON, UID, Schema
from curate.step import Step, StepContext, TableInput


class ClipFilterParams(Params):
    column: str = Field("clip_score", description="the score column to filter on")
    threshold: float | None = Field(None, allow_inf_nan=False, description="keep rows scoring at least this "
                                    "(a cosine, in [-1, 1], for clip_score columns)")
    top_fraction: float | None = Field(None, gt=0, le=1, description="keep the best-scoring ⌈f·n⌉ rows")
    quantile: float | None = Field(None, ge=0, le=1, description="keep rows at or above this quantile of their group")
    by: str | None = Field(None, min_length=1, description="with quantile: the group column")
    keep_null: bool = Field(False, description="keep rows without a score (no image, no text)")

    @model_validator(mode="after")
    def _one_rule(self) -> ClipFilterParams:
        rules = [r for r in ("threshold", "top_fraction", "quantile") if getattr(self, r) is not None]
        if len(rules) != 1:
            raise ValueError("give exactly one of 'threshold', 'top_fraction' or 'quantile'")
        if self.by is not None and self.quantile is None:
            raise ValueError("'by' goes with 'quantile'")
        if self.threshold is not None and self.column.startswith("clip_score") and abs(self.threshold) > 1:
            raise ValueError(f"threshold {self.threshold:g} is outside [-1, 1], where a cosine score lies")
        return self


class ClipFilter(Step):
    """Rows without a score are dropped (reason ``no_score``) unless ``keep_null``; they do not
    count in ``n`` for a top fraction. Ties at the cut are broken by uid, so exactly ⌈f·n⌉ stay."""

    name = "clip_filter"
    description = "keep rows by CLIP score: threshold, top fraction, or quantile per group"
    drops_rows = True
    Params = ClipFilterParams

    def __init__(self, params: ClipFilterParams | None = None, *, label: str | None = None):
        super().__init__(params, label=label)
        self._summary: dict[str, Any] = {}

    @property
    def scope(self) -> Literal["shard", "table"]:  # type: ignore[override]
        return "shard" if self.params.threshold is not None else "table"  # a top fraction or a quantile needs every row

    def input_columns(self) -> Schema:
        columns: Schema = {UID: pl.Utf8, self.params.column: pl.Float64}
        if self.params.by:
            columns[self.params.by] = pl.Null
        return columns

    def _reasons(self) -> tuple[str, str]:
        return literal(f"{self.label}:low_score"), literal(f"{self.label}:no_score")

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        score = pl.col(self.params.column)
        low, none = f"{self.label}:low_score", f"{self.label}:no_score"
        reason = (  # a NaN score is no score: it passes no threshold, and is not low either
            pl.when(score.is_null() | score.cast(pl.Float64).is_nan())
            .then(pl.lit(None if self.params.keep_null else none, pl.Utf8))
            .when(score < self.params.threshold).then(pl.lit(low))
            .otherwise(pl.lit(None, pl.Utf8))
        )
        return table.with_columns(reason.alias(DROP_REASON))

    def process_table(self, table: TableInput, ctx: StepContext) -> Iterator[pl.DataFrame]:
        p = self.params
        low, none = self._reasons()
        col = quote(p.column)
        missing = missing_number(col)  # NaN is no score, as in a shard
        score = f"(CASE WHEN NOT {missing} THEN CAST({col} AS DOUBLE) END)"
        null_reason = "NULL" if p.keep_null else none
        con = ctx.duckdb()
        try:
            create_input_view(con, table)
            if p.top_fraction is not None:
                n = con.sql(f"SELECT count(*) FROM input WHERE NOT {missing}").fetchall()[0][0]
                k = math.ceil(p.top_fraction * n)
                cut = con.sql(
                    f"SELECT min({col}) FROM (SELECT {col} FROM input WHERE NOT {missing} "
                    f"ORDER BY {col} DESC, uid LIMIT {k})").fetchall()[0][0] if k else None
                self._summary = {"rule": "top_fraction", "top_fraction": p.top_fraction, "scored_rows": n,
                                 "kept": k, "threshold": cut}
                yield from stream(con, f"""
                    WITH ranked AS (
                        SELECT *, CASE WHEN {missing} THEN NULL
                                  ELSE row_number() OVER (ORDER BY {score} DESC NULLS LAST, uid) END AS _rank
                        FROM input)
                    SELECT * EXCLUDE (_rank, _shard, _row),
                           CASE WHEN _rank IS NULL THEN {null_reason}
                                WHEN _rank > {k} THEN {low} END AS {DROP_REASON}
                    FROM ranked ORDER BY length(_shard), _shard, _row""")
            else:
                group = quote(p.by) if p.by else "NULL"
                # In double precision: interpolated in a float32 score's own precision, a cut between two
                # neighbouring scores could round onto the lower one and keep it (0.0 and 1e-45 -> 0.0).
                cuts = con.sql(
                    f"SELECT {group} AS grp, quantile_cont({score}, {p.quantile}) AS cut, "
                    f"count({score}) AS n FROM input GROUP BY ALL ORDER BY grp NULLS FIRST").pl()
                self._summary = {"rule": "quantile", "quantile": p.quantile, "by": p.by,
                                 "thresholds": {str(r["grp"]): r["cut"] for r in cuts.iter_rows(named=True)}}
                if not p.by:
                    self._summary["threshold"] = cuts["cut"][0] if cuts.height else None
                join = f"ON input.{group} IS NOT DISTINCT FROM cuts.grp" if p.by else "ON true"
                con.register("cuts_frame", cuts)
                yield from stream(con, f"""
                    SELECT input.* EXCLUDE (_shard, _row),
                           CASE WHEN {missing_number(f"input.{col}")} THEN {null_reason}
                                WHEN CAST(input.{col} AS DOUBLE) < cuts.cut THEN {low} END AS {DROP_REASON}
                    FROM input LEFT JOIN cuts_frame AS cuts {join}
                    ORDER BY length(input._shard), input._shard, input._row""")
        finally:
            con.close()

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        if self.params.threshold is not None:
            return {"rule": "threshold", "threshold": self.params.threshold}
        return self._summary
