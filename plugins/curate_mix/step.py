"""``mix``: the final ``caption`` of each row, chosen from its alt-text and a synthetic caption by a
strategy (built-in or from a plugin), with ``caption_source`` saying which one it is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import polars as pl
from pydantic import Field, ValidationError

from curate.errors import CurateError, Problem, SpecError, StepError, error_line
from curate.hashing import uniform
from curate.params import Params
from curate.plugins import PluginManager, get_plugin_manager
from curate.schema import UID, Schema, compatible, dtype_name
from curate.step import Step, StepContext, TableInput
from curate_mix.strategies import MixColumns, MixStrategy


def available_strategies(pm: PluginManager | None = None) -> dict[str, type[MixStrategy]]:
    """Every strategy the installed plugins provide, by name; a name claimed twice is an error."""
    return {name: cls for name, (cls, _) in _strategies(pm).items()}


def _strategies(pm: PluginManager | None) -> dict[str, tuple[type[MixStrategy], str]]:
    """name → (strategy class, the plugin that provides it)."""
    found: dict[str, tuple[type[MixStrategy], str]] = {}
    hook = getattr((pm or get_plugin_manager()).hook, "curate_mix_strategies", None)  # None: mix not registered
    for impl in reversed(hook.get_hookimpls() if hook is not None else []):  # pluggy's calling order
        for cls in impl.function() or []:
            if cls.name in found and found[cls.name][0] is not cls:
                raise SpecError([Problem("", f"mix strategy '{cls.name}' is provided by both plugin "
                                         f"'{found[cls.name][1]}' and plugin '{impl.plugin_name}'",
                                         "uninstall one of them, or rename the strategy's name in your plugin")])
            found[cls.name] = (cls, impl.plugin_name)
    return found


class MixParams(Params):
    strategy: str = Field("replace_prob", description="replace_prob, ratio, score_gated, multi, concat, or a plugin's")
    options: dict[str, Any] = Field(default_factory=dict, description="the strategy's own params (e.g. {p: 0.15})")
    original: str = Field("alt_text", description="column with the original (web) caption")
    synthetic: str = Field("caption_realigned", description="column with the synthetic caption")
    original_score: str = Field("clip_score", description="score of the original caption (score_gated)")
    synthetic_score: str = Field("clip_score_caption_realigned", description="score of the synthetic caption (score_gated)")
    seed: int | None = Field(None, description="default: the run's seed")


def _scorer(upstream: list[Step], column: str) -> tuple[str, str] | None:
    """(label, its model as text) of the nearest clip_score step before this one that writes
    ``column``; None when the nearest writer of it is another kind of step, or there is none."""
    for step in reversed(upstream):
        if column in step.output_columns():
            if step.name != "clip_score":
                return None
            params = step.params
            model = f"model {getattr(params, 'model', None)!r}"
            for name in ("pretrained", "checkpoint"):
                if getattr(params, name, None):
                    model += f", {name} {getattr(params, name)!r}"
            return step.label, model
    return None


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
        strategies = _strategies(pm)
        cls, self.strategy_plugin = strategies.get(self.params.strategy, (None, ""))
        if cls is None:
            raise SpecError(f"unknown mix strategy '{self.params.strategy}'; available: {', '.join(sorted(strategies))}")
        columns = MixColumns(original=self.params.original, synthetic=self.params.synthetic,
                             original_score=self.params.original_score, synthetic_score=self.params.synthetic_score)
        try:
            options = cls.Params.model_validate(self.params.options)
        except ValidationError as error:
            # each wrong option located (options.fraction), as a step's own params are, not pydantic's dump
            from curate.spec import problems_from_validation
            from curate.suggest import did_you_mean

            accepts = f"'{cls.name}' takes: {', '.join(cls.Params.model_fields) or 'no options'}"
            raise SpecError([Problem(".".join(str(p) for p in ("options", *loc)), message,
                                     did_you_mean(str(loc[-1]), cls.Params.model_fields, accepts)
                                     if message == "unknown key" else None)
                             for loc, message in problems_from_validation(error)]) from None
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

    def plan_check_upstream(self, upstream: list[Step]) -> list[str]:
        """``score_gated`` compares two CLIP scores: both must come from one model (a tiny CLIP's
        caption scores, mean 0.12, against the world CLIP's alt-text scores, mean 0.41, gave 7 of
        12 rows to the synthetic caption without a word: blend probe)."""
        if self.strategy.name != "score_gated":
            return []
        scorers = [_scorer(upstream, column) for column in (self.params.original_score, self.params.synthetic_score)]
        if None in scorers or scorers[0][1] == scorers[1][1]:  # a score another step computed: not ours to judge
            return []
        (first, model_a), (second, model_b) = scorers  # type: ignore[misc]
        return [f"score_gated compares '{self.params.original_score}' (step '{first}': {model_a}) with "
                f"'{self.params.synthetic_score}' (step '{second}': {model_b}): two CLIPs' scores are on different "
                "scales, so the gate would pick by model, not by fit; score both texts with one model (one "
                "clip_score step with texts: [alt_text, caption_realigned], or the same model, pretrained and "
                "checkpoint in both)"]

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
        chosen = self._strategy_mix(frame, ctx)
        drop = [c for c in chosen.columns if c in table.columns]
        return pl.concat([table.drop(drop), chosen], how="horizontal")

    def _strategy_mix(self, frame: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        """The strategy's choice, checked: its mistakes are named as its own plugin's, not mix's."""
        where = f"mix strategy '{self.strategy.name}'"
        bug = f"this is a bug in plugin '{self.strategy_plugin}', which provides the strategy"
        try:
            chosen = self.strategy.mix(frame)
        except CurateError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's bug, named
            raise StepError(self.label, ctx.shard, f"{where} failed: {error_line(exc)}", bug) from exc
        if not isinstance(chosen, pl.DataFrame):
            raise StepError(self.label, ctx.shard, f"{where} returned {type(chosen).__name__}, not a polars DataFrame",
                            bug)
        if chosen.height != frame.height:
            raise StepError(self.label, ctx.shard, f"{where} returned {chosen.height} rows for {frame.height}", bug)
        for name, dtype in self.output_columns().items():
            if name not in chosen.columns:
                raise StepError(self.label, ctx.shard, f"{where} did not return its column '{name}'", bug)
            if not compatible(chosen.schema[name], dtype):
                raise StepError(self.label, ctx.shard, f"{where} returned '{name}' as {dtype_name(chosen.schema[name])}, "
                                f"not {dtype_name(dtype)}", bug)
        return chosen

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
