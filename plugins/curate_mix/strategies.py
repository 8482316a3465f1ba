"""Mixing strategies: how one row's final ``caption`` is chosen from its alt-text and a synthetic
caption. A strategy sees whole frames and uniform per-row draws, never a random generator, so a
mix depends only on (uid, seed) and not on shard layout.

A plugin adds a strategy by returning its class from the ``curate_mix_strategies`` hook; the
built-ins below register the same way (``curate_mix.__init__``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import polars as pl
from pydantic import BaseModel, Field

from curate.params import Params
from curate.schema import Schema

# caption_source values written by the built-ins.
ORIGINAL = "original"
SYNTHETIC = "synthetic"
FALLBACK = "original_fallback"  # the strategy wanted the synthetic caption, but it was null or empty
CONCAT = "concat"
MULTI = "multi"
CAPTIONS = "captions"  # the list column of the `multi` strategy


class MixColumns(BaseModel):
    """Which columns hold the candidates (and their scores), as named in the mix step's params."""

    original: str = "alt_text"
    synthetic: str = "caption_realigned"
    original_score: str = "clip_score"
    synthetic_score: str = "clip_score_caption_realigned"


class MixStrategy:
    """Base class of mixing strategies. Subclass, set ``name`` and ``Params``, implement :meth:`mix`.

    :meth:`mix` gets a frame with the columns of :meth:`reads` plus ``_original`` and
    ``_synthetic`` (text, empty or null synthetic already null), ``_has_synthetic`` (bool) and
    ``_draw`` (a uniform float in [0, 1) per row, from uid and seed). It returns a frame of the
    same height and order with ``caption``, ``caption_source`` and the columns of :meth:`writes`.
    ``scope = "table"`` strategies get every row at once (exact ratios); ``"shard"`` ones one
    shard at a time, so a row's result may depend only on that row.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    scope: ClassVar[Literal["shard", "table"]] = "shard"

    class Params(Params):
        pass

    def __init__(self, params: Params, columns: MixColumns):
        self.params = params
        self.columns = columns

    def reads(self) -> Schema:
        """Columns beyond the two candidates (scores, a stratification column)."""
        return {}

    def writes(self) -> Schema:
        """Columns beyond ``caption`` and ``caption_source``."""
        return {}

    def target_ratios(self) -> dict[str, float] | None:
        """The intended share of each ``caption_source``, for the manifest and the report."""
        return None

    def mix(self, frame: pl.DataFrame) -> pl.DataFrame:
        raise NotImplementedError


BLANK_ORIGINAL = pl.col("_original").is_null() | (pl.col("_original").str.strip_chars() == "")


def choose(frame: pl.DataFrame, want_synthetic: pl.Expr) -> pl.DataFrame:
    """The synthetic caption where wanted and present, else the original (a fallback if wanted).
    An empty or blank original is never kept over a synthetic caption, whatever the draw: there is
    nothing in it to train on (``ratio`` and ``replace_prob`` shipped 19 empty captions of the
    quickstart world's 36 empty alt-texts, each with a realigned caption beside it)."""
    use = (want_synthetic | BLANK_ORIGINAL) & pl.col("_has_synthetic")
    return frame.select(
        pl.when(use).then(pl.col("_synthetic")).otherwise(pl.col("_original")).alias("caption"),
        pl.when(use).then(pl.lit(SYNTHETIC))
        .when(want_synthetic).then(pl.lit(FALLBACK))
        .otherwise(pl.lit(ORIGINAL)).alias("caption_source"),
    )


class ReplaceProb(MixStrategy):
    """Each row takes the synthetic caption with probability ``p`` (MetaCLIP v1.2 uses 0.15)."""

    name = "replace_prob"
    description = "synthetic caption with probability p"

    class Params(Params):
        p: float = Field(0.15, ge=0, le=1, description="probability of the synthetic caption")

    def target_ratios(self) -> dict[str, float]:
        return {SYNTHETIC: self.params.p, ORIGINAL: 1 - self.params.p}

    def mix(self, frame: pl.DataFrame) -> pl.DataFrame:
        return choose(frame, pl.col("_draw") < self.params.p)


class Ratio(MixStrategy):
    """``round(fraction × rows)`` rows synthetic (per value of ``stratify_by`` if given): the rows
    with the lowest draws among those that have a synthetic caption, rows whose alt-text is empty
    first (they take the synthetic caption whatever the quota, :func:`choose`). Exact while enough
    rows have a synthetic caption and no more have an empty alt-text than the quota."""

    name = "ratio"
    description = "an exact fraction synthetic, optionally stratified by a column"
    scope = "table"

    class Params(Params):
        fraction: float = Field(0.5, ge=0, le=1, description="share of rows with the synthetic caption")
        stratify_by: str | None = Field(None, min_length=1, description="apply the fraction within each value of this column")

    def reads(self) -> Schema:
        return {self.params.stratify_by: pl.Null} if self.params.stratify_by else {}

    def target_ratios(self) -> dict[str, float]:
        return {SYNTHETIC: self.params.fraction, ORIGINAL: 1 - self.params.fraction}

    def mix(self, frame: pl.DataFrame) -> pl.DataFrame:
        group = [pl.col(self.params.stratify_by)] if self.params.stratify_by else [pl.lit(0)]
        # Rows without a synthetic caption rank last, so the quota goes to rows that can use it.
        rank = pl.struct((~pl.col("_has_synthetic")).alias("missing"), (~BLANK_ORIGINAL).alias("kept"),
                         pl.col("_draw"), pl.col("uid")).rank("ordinal").over(group)
        quota = (pl.len().over(group) * self.params.fraction).round(0)
        return choose(frame, rank <= quota)


class ScoreGated(MixStrategy):
    """The caption with the higher CLIP score; the alt-text wins unless the synthetic caption beats
    it by more than ``margin`` (an alt-text naming what a captioner cannot know is worth keeping).
    An empty or blank alt-text never wins against a synthetic caption: a CLIP gives the empty
    string a score like any text (the world CLIP: about 0.2), but there is nothing in it to train on."""

    name = "score_gated"
    description = "higher CLIP score wins, with a margin favouring the alt-text"

    class Params(Params):
        margin: float = Field(0.0, ge=0, description="the synthetic caption needs a score this much higher")

    def reads(self) -> Schema:
        return {self.columns.original_score: pl.Float64, self.columns.synthetic_score: pl.Float64}

    def mix(self, frame: pl.DataFrame) -> pl.DataFrame:
        original = pl.col(self.columns.original_score).fill_null(float("-inf")).fill_nan(float("-inf"))
        synthetic = pl.col(self.columns.synthetic_score).fill_null(float("-inf")).fill_nan(float("-inf"))
        return choose(frame, BLANK_ORIGINAL | (synthetic > original + self.params.margin))


class Multi(MixStrategy):
    """Keep every non-empty candidate in a list column ``captions`` (the loader samples one per
    epoch, as LaCLIP does); ``caption`` is one of them, drawn per row, for clients reading one."""

    name = "multi"
    description = "all candidates as a list column; training samples one per epoch"

    def writes(self) -> Schema:
        return {CAPTIONS: pl.List(pl.Utf8)}

    def mix(self, frame: pl.DataFrame) -> pl.DataFrame:
        original_present = pl.col("_original").is_not_null() & (pl.col("_original").str.strip_chars() != "")
        captions = pl.concat_list(
            pl.when(original_present).then(pl.col("_original")),
            pl.col("_synthetic"),
        ).list.drop_nulls()
        both = original_present & pl.col("_has_synthetic")
        caption = pl.when(both & (pl.col("_draw") < 0.5)).then(pl.col("_synthetic")) \
            .when(original_present | pl.col("_synthetic").is_null()).then(pl.col("_original")) \
            .otherwise(pl.col("_synthetic"))
        source = pl.when(pl.col("_has_synthetic")).then(pl.lit(MULTI)).otherwise(pl.lit(FALLBACK))
        return frame.select(caption.alias("caption"), source.alias("caption_source"), captions.alias(CAPTIONS))


class Concat(MixStrategy):
    """The alt-text, a separator, then the synthetic caption (the alt-text alone when there is none)."""

    name = "concat"
    description = "alt-text + separator + synthetic caption"

    class Params(Params):
        separator: str = Field(". ", description="text between the two captions")

    def mix(self, frame: pl.DataFrame) -> pl.DataFrame:
        original_present = pl.col("_original").is_not_null() & (pl.col("_original").str.strip_chars() != "")
        joined = pl.col("_original") + pl.lit(self.params.separator) + pl.col("_synthetic")
        return frame.select(
            pl.when(pl.col("_has_synthetic") & original_present).then(joined)
            .when(pl.col("_has_synthetic")).then(pl.col("_synthetic"))
            .otherwise(pl.col("_original")).alias("caption"),
            pl.when(pl.col("_has_synthetic")).then(pl.lit(CONCAT)).otherwise(pl.lit(FALLBACK)).alias("caption_source"),
        )


BUILTIN = [ReplaceProb, Ratio, ScoreGated, Multi, Concat]
