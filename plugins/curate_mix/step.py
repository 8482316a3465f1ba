"""``mix``: the final ``caption`` of each row, chosen from its alt-text and a synthetic caption by a
strategy (built-in or from a plugin), with ``caption_source`` saying which one it is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import polars as pl
from pydantic import Field

from curate.errors import SpecError
from curate.hashing import uniform
from curate.params import Params
from curate.plugins import PluginManager, get_plugin_manager
from curate.schema import UID, Schema
from curate.step import Step, StepContext, TableInput
from curate_mix.strategies import MixColumns, MixStrategy


def available_strategies(pm: PluginManager | None = None) -> dict[str, type[MixStrategy]]:
    """Every strategy the installed plugins provide, by name; a name claimed twice is an error."""
    found: dict[str, type[MixStrategy]] = {}
    hook = getattr((pm or get_plugin_manager()).hook, "curate_mix_strategies", None)  # None: mix not registered
    for classes in (hook() if hook is not None else []):
        for cls in classes or []:
            if cls.name in found and found[cls.name] is not cls:
                raise SpecError(f"mix strategy '{cls.name}' is provided twice ({found[cls.name].__module__}, "
                                f"{cls.__module__})")
            found[cls.name] = cls
    return found


class MixParams(Params):
    strategy: str = Field("replace_prob", description="replace_prob, ratio, score_gated, multi, concat, or a plugin's")
    options: dict[str, Any] = Field(default_factory=dict, description="the strategy's own params (e.g. {p: 0.15})")
    original: str = Field("alt_text", description="column with the original (web) caption")
    synthetic: str = Field("caption_realigned", description="column with the synthetic caption")
    original_score: str = Field("clip_score", description="score of the original caption (score_gated)")
    synthetic_score: str = Field("clip_score_caption_realigned", description="score of the synthetic caption (score_gated)")
    seed: int | None = Field(None, description="default: the run's seed")


class Mix(Step):
    """Writes ``caption`` and ``caption_source`` (plus whatever the strategy adds, e.g. ``captions``).
    Draws come from (uid, seed), so the mix is the same for any shard size or executor."""

    name = "mix"
    description = "blend alt-text and synthetic captions (replace_prob, ratio, score_gated, multi, concat)"
    random = True
    Params = MixParams

    def __init__(self, params: MixParams | None = None, *, label: str | None = None,
                 pm: PluginManager | None = None):
        super().__init__(params, label=label)
        strategies = available_strategies(pm)
        cls = strategies.get(self.params.strategy)
        if cls is None:
            raise SpecError(f"unknown mix strategy '{self.params.strategy}'; available: {', '.join(sorted(strategies))}")
        columns = MixColumns(original=self.params.original, synthetic=self.params.synthetic,
                             original_score=self.params.original_score, synthetic_score=self.params.synthetic_score)
        try:
            options = cls.Params.model_validate(self.params.options)
        except ValueError as error:
            raise SpecError(f"mix strategy '{cls.name}' options: {error}") from None
        self.strategy = cls(options, columns)

    def places(self) -> list[tuple[str, str]]:
        """A strategy's options may name files too (a plugin's strategy reading a list)."""
        options = [(f"options.{name}", path) for name, path in self.strategy.params.places()]
        return [*super().places(), *options]

    @property
    def scope(self) -> Literal["shard", "table"]:  # type: ignore[override]
        return self.strategy.scope

    def input_columns(self) -> Schema:
        return {UID: pl.Utf8, self.params.original: pl.Utf8, self.params.synthetic: pl.Utf8,
                **self.strategy.reads()}

    def output_columns(self) -> Schema:
        return {"caption": pl.Utf8, "caption_source": pl.Utf8, **self.strategy.writes()}

    def _mixed(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        seed = self.params.seed if self.params.seed is not None else ctx.seed
        synthetic = pl.col(self.params.synthetic).cast(pl.Utf8)
        usable = synthetic.is_not_null() & (synthetic.str.strip_chars() != "")
        frame = table.select(
            pl.col(UID),
            *[pl.col(c) for c in self.strategy.reads() if c != UID],
            pl.col(self.params.original).cast(pl.Utf8).alias("_original"),
            pl.when(usable).then(synthetic).alias("_synthetic"),
            usable.alias("_has_synthetic"),
        ).with_columns(pl.Series("_draw", uniform(table[UID], seed, salt=f"mix:{self.strategy.name}")))
        chosen = self.strategy.mix(frame)
        if chosen.height != table.height:
            raise ValueError(f"mix strategy '{self.strategy.name}' returned {chosen.height} rows for {table.height}")
        drop = [c for c in chosen.columns if c in table.columns]
        return pl.concat([table.drop(drop), chosen], how="horizontal")

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        return self._mixed(table, ctx)

    def process_table(self, table: TableInput, ctx: StepContext) -> Iterator[pl.DataFrame]:
        # Exact ratios need every row's draw; the candidate columns of a pool fit in memory.
        yield self._mixed(table.scan().collect(), ctx)

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        facts: dict[str, Any] = {"strategy": self.strategy.name, "options": self.strategy.params.model_dump()}
        targets = self.strategy.target_ratios()
        if targets is not None:
            facts["target_ratios"] = targets
        return facts
