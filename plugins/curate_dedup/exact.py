"""``dedup_exact``: rows whose image bytes (``sha256``, written by ``download``) or normalized
alt-text are equal are one group; one row per group stays, chosen by the keep policy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl
from pydantic import Field, field_validator

from curate.schema import ALT_TEXT, Schema
from curate.step import Step, StepContext, TableInput
from curate_dedup.groups import components, make_groups
from curate_dedup.keep import KeepParams, priority
from curate_dedup.table import GROUP, annotate, read_columns, verdict

SHA256 = "sha256"


def text_key(column: pl.Expr) -> pl.Expr:
    """Alt-text as a dedup key: NFKC, lower case, punctuation and symbols dropped, whitespace
    collapsed. Empty keys are null: an empty alt-text duplicates nothing."""
    text = (column.str.normalize("NFKC").str.to_lowercase()
            .str.replace_all(r"[^\w\s]|_", " ").str.replace_all(r"\s+", " ").str.strip_chars())
    return pl.when(text.str.len_chars() > 0).then(text)


class DedupExactParams(KeepParams):
    by: list[Literal["image", "text"]] = Field(["image"], min_length=1, max_length=2,
                                               description="image: equal sha256; text: equal normalized alt-text")
    match: Literal["any", "all"] = Field("any", description="with both keys: duplicates share any key, or all keys")
    image_column: str = SHA256
    text_column: str = ALT_TEXT

    @field_validator("by")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each key at most once")
        return value


def _first_of(frame: pl.DataFrame, key: pl.Expr) -> tuple[np.ndarray, np.ndarray]:
    """Edges from every row to the earliest row with the same non-null key."""
    pos = pl.int_range(pl.len(), dtype=pl.Int64)
    edges = (frame.lazy().select(key.alias("_key"), pos.alias("_pos"))
             .filter(pl.col("_key").is_not_null())
             .with_columns(pl.col("_pos").min().over("_key").alias("_first"))
             .filter(pl.col("_pos") != pl.col("_first"))
             .collect())
    return edges["_pos"].to_numpy(), edges["_first"].to_numpy()


class DedupExact(Step):
    """Ties under max/min go to the earliest row, so the survivor is always deterministic."""

    name = "dedup_exact"
    description = "drop rows with the same image bytes (sha256) and/or normalized alt-text"
    scope = "table"
    drops_rows = True
    writes: ClassVar[Schema] = {GROUP: pl.Int64}
    Params = DedupExactParams

    def _keys(self) -> dict[str, pl.Expr]:
        p = self.params
        keys = {"image": pl.col(p.image_column), "text": text_key(pl.col(p.text_column))}
        return {name: keys[name] for name in p.by}

    def input_columns(self) -> Schema:
        p = self.params
        cols: Schema = {p.image_column: pl.Utf8} if "image" in p.by else {}
        if "text" in p.by:
            cols[p.text_column] = pl.Utf8
        return {**cols, **p.keep_columns()}

    def process_table(self, table: TableInput, ctx: StepContext) -> Iterator[pl.DataFrame]:
        p = self.params
        frame = read_columns(table, list(self.input_columns()))
        keys = self._keys()
        if p.match == "all" and len(keys) > 1:
            both = pl.when(pl.all_horizontal([k.is_not_null() for k in keys.values()])).then(
                pl.concat_list([k.cast(pl.Utf8) for k in keys.values()]))
            keys = {"+".join(keys): both}
        edges = [_first_of(frame, key) for key in keys.values()]
        first = np.concatenate([e[0] for e in edges]) if edges else np.zeros(0, np.int64)
        second = np.concatenate([e[1] for e in edges]) if edges else np.zeros(0, np.int64)
        groups = make_groups(components(frame.height, first, second), priority(p, frame))
        self._facts = {"groups": groups.n_groups, "dropped": int(groups.dropped.sum())}
        yield from annotate(table, verdict(frame, groups, self._reasons(frame, groups)))

    def _reasons(self, frame: pl.DataFrame, groups: Any) -> str | pl.Series:
        """With two keys (any), say which one the dropped row shares with its survivor."""
        if len(self.params.by) == 1 or self.params.match == "all":
            return self.label
        image = frame[self.params.image_column]
        same_image = (image == image.gather(groups.survivor)).fill_null(False)
        return pl.Series(np.where(same_image.to_numpy(), f"{self.label}: image", f"{self.label}: text"))

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        return dict(getattr(self, "_facts", {}))
