"""Keep policies: which member of a duplicate group stays. Shared by every dedup step here."""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from curate.params import Params
from curate.schema import Schema
from curate_dedup.groups import priority_from_keys, value_priority

ORDERED = ("max", "min")


class KeepParams(Params):
    keep: Literal["first", "last", "max", "min"] = Field(
        "first", description="first/last: by input order; max/min: by the 'order_by' column (nulls lose)")
    order_by: str | None = Field(None, description="with keep max/min: the numeric column to compare (clip_score…)")

    @model_validator(mode="after")
    def _order(self):  # type: ignore[no-untyped-def]
        if self.keep in ORDERED and not self.order_by:
            raise ValueError(f"keep '{self.keep}' needs 'order_by': the column whose {self.keep} survives")
        if self.keep not in ORDERED and self.order_by:
            raise ValueError("'order_by' only applies to keep max/min")
        return self

    def keep_columns(self) -> Schema:
        return {self.order_by: pl.Float64} if self.order_by else {}


def priority(params: KeepParams, table: pl.DataFrame, centroid_similarity: np.ndarray | None = None) -> np.ndarray:
    """Survivor ranks for the rows of ``table`` (0 = preferred); ties go to the earliest row."""
    n = table.height
    keep = params.keep
    if keep == "first":
        return np.arange(n, dtype=np.int64)
    if keep == "last":
        return priority_from_keys(-np.arange(n))
    if keep in ORDERED:
        assert params.order_by is not None
        values = table[params.order_by].cast(pl.Float64).fill_nan(None).to_numpy(allow_copy=True)
        return value_priority(np.asarray(values, dtype=np.float64), largest_first=keep == "max")
    if keep == "far_from_centroid":
        assert centroid_similarity is not None
        return value_priority(centroid_similarity, largest_first=False)
    raise ValueError(f"unknown keep policy {keep!r}")
