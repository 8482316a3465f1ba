from __future__ import annotations

import math

import curate_basics
import curate_mix
import polars as pl
import pytest
from curate_mix.step import Mix, available_strategies
from curate_mix.strategies import CAPTIONS, MixStrategy, choose
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.errors import SpecError
from curate.hookspecs import hookimpl
from curate.plugins import PluginManager
from curate.testing import run_step
from curate.testing import strategies as cst


@pytest.fixture
def mix_pm(pm: PluginManager) -> PluginManager:
    pm.register(curate_mix, name="mix", distribution="curate", version=curate_mix.__version__)
    return pm


def pool(n: int, *, missing_every: int = 0) -> pl.DataFrame:
    synthetic = [None if missing_every and i % missing_every == 0 else f"syn {i}" for i in range(n)]
    return pl.DataFrame({
        "uid": [f"{i:016x}" for i in range(n)],
        "alt_text": [f"alt {i}" for i in range(n)],
        "caption_realigned": synthetic,
        "clip_score": [(i % 7) / 10 for i in range(n)],
        "clip_score_caption_realigned": [(i % 5) / 10 for i in range(n)],
        "group": [["a", "b", "c"][i % 3] for i in range(n)],
    })


def mixed(pm, table, strategy, options=None, *, seed=0, shard_size=1000, **params) -> pl.DataFrame:
    step = Mix(Mix.Params(strategy=strategy, options=options or {}, **params), pm=pm)
    return run_step(step, table, seed=seed, shard_size=shard_size, pm=pm).kept


def within_binomial(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1


@pytest.mark.parametrize("p", [0.0, 0.15, 0.5, 1.0])
def test_replace_prob_lands_within_binomial_tolerance(mix_pm, p):
    result = mixed(mix_pm, pool(2000), "replace_prob", {"p": p})
    assert within_binomial(int((result["caption_source"] == "synthetic").sum()), 2000, p)


def test_ratio_is_exact_and_stratified(mix_pm):
    table = pool(999)
    result = mixed(mix_pm, table, "ratio", {"fraction": 0.3, "stratify_by": "group"}, shard_size=100)
    per_group = result.group_by("group").agg((pl.col("caption_source") == "synthetic").sum().alias("n"))
    assert dict(per_group.iter_rows()) == {"a": 100, "b": 100, "c": 100}


def test_ratio_gives_its_quota_to_rows_that_have_a_synthetic_caption(mix_pm):
    result = mixed(mix_pm, pool(100, missing_every=2), "ratio", {"fraction": 0.4})
    assert (result["caption_source"] == "synthetic").sum() == 40
    assert (result["caption_source"] == "original_fallback").sum() == 0


def test_score_gated_prefers_the_alt_text_within_the_margin(mix_pm):
    result = mixed(mix_pm, pool(70), "score_gated", {"margin": 0.05})
    expected = [s > o + 0.05 for o, s in zip(result["clip_score"], result["clip_score_caption_realigned"], strict=True)]
    assert (result["caption_source"] == "synthetic").to_list() == expected


def test_multi_keeps_every_candidate_and_concat_joins_them(mix_pm):
    result = mixed(mix_pm, pool(30, missing_every=3), "multi")
    for row in result.iter_rows(named=True):
        expected = [row["alt_text"]] + ([row["caption_realigned"]] if row["caption_realigned"] else [])
        assert row[CAPTIONS] == expected and row["caption"] in expected
    joined = mixed(mix_pm, pool(30, missing_every=3), "concat", {"separator": " | "})
    for row in joined.iter_rows(named=True):
        want = f"{row['alt_text']} | {row['caption_realigned']}" if row["caption_realigned"] else row["alt_text"]
        assert row["caption"] == want


def test_missing_synthetic_falls_back_to_the_original_and_says_so(mix_pm):
    table = pool(50).with_columns(pl.when(pl.col("uid").str.ends_with("1")).then(pl.lit("  "))
                                  .otherwise(pl.col("caption_realigned")).alias("caption_realigned"))
    result = mixed(mix_pm, table, "replace_prob", {"p": 1.0})
    blank = result.filter(pl.col("uid").str.ends_with("1"))
    assert blank.height > 0 and (blank["caption_source"] == "original_fallback").all()
    assert (blank["caption"] == blank["alt_text"]).all()


STRATEGIES = [("replace_prob", {"p": 0.3}), ("ratio", {"fraction": 0.4}), ("score_gated", {"margin": 0.01}),
              ("multi", {}), ("concat", {"separator": " / "})]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=cst.tables(min_rows=1, max_rows=40), data=st.data())
def test_mixing_never_invents_text_and_is_deterministic_and_shard_independent(mix_pm, table, data):
    strategy, options = data.draw(st.sampled_from(STRATEGIES))
    seed = data.draw(st.integers(0, 3))
    n = table.height
    table = table.with_columns(
        pl.Series("caption_realigned", data.draw(st.lists(st.one_of(st.none(), st.just(""), cst.alt_texts(40, False)),
                                                          min_size=n, max_size=n)), pl.Utf8),
        pl.Series("clip_score", data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), pl.Float64),
        pl.Series("clip_score_caption_realigned", data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), pl.Float64),
    )
    one = mixed(mix_pm, table, strategy, options, seed=seed, shard_size=1000)
    again = mixed(mix_pm, table, strategy, options, seed=seed, shard_size=data.draw(st.integers(1, 7)))
    assert one.sort("uid").equals(again.sort("uid"))
    assert one["uid"].to_list() == table["uid"].to_list()
    for row in one.iter_rows(named=True):
        original, synthetic = row["alt_text"], row["caption_realigned"]
        allowed = {original, synthetic}
        if strategy == "concat" and synthetic and synthetic.strip() and original and original.strip():
            allowed = {f"{original} / {synthetic}"}
        assert row["caption"] in allowed
        if strategy in ("replace_prob", "ratio", "score_gated") and not (original or "").strip() and \
                (synthetic or "").strip():  # nothing in an empty alt-text to train on (blend probe)
            assert row["caption"] == synthetic and row["caption_source"] == "synthetic"
        if strategy == "multi":
            assert set(row[CAPTIONS]) <= {original, synthetic}


@pytest.mark.parametrize("strategy, options", [("replace_prob", {"p": 0.0}), ("ratio", {"fraction": 0.0}),
                                               ("ratio", {"fraction": 0.2})])
def test_an_empty_alt_text_takes_the_synthetic_caption_whatever_the_draw(mix_pm, strategy, options):
    """ratio 0.5 on the quickstart world shipped 19 empty captions, each with a realigned caption
    beside it, and called them `original` (blend probe)."""
    table = pool(100).with_columns(pl.when(pl.col("uid").str.ends_with("3")).then(pl.lit(" "))
                                   .otherwise(pl.col("alt_text")).alias("alt_text"))
    result = mixed(mix_pm, table, strategy, options)
    blank = result.filter(pl.col("uid").str.ends_with("3"))
    assert blank.height and (blank["caption_source"] == "synthetic").all()
    assert (blank["caption"] == blank["caption_realigned"]).all()
    if strategy == "ratio":  # the empty ones count toward the quota, which stays exact when it holds them
        expected = max(round(options["fraction"] * 100), blank.height)
        assert (result["caption_source"] == "synthetic").sum() == expected


def test_seed_changes_the_draw(mix_pm):
    a = mixed(mix_pm, pool(300), "replace_prob", {"p": 0.5}, seed=1)
    b = mixed(mix_pm, pool(300), "replace_prob", {"p": 0.5}, seed=2)
    assert not a["caption_source"].equals(b["caption_source"])


def test_bad_strategy_or_options_are_spec_errors(mix_pm):
    with pytest.raises(SpecError, match="unknown mix strategy 'replace'.*replace_prob"):
        Mix(Mix.Params(strategy="replace"), pm=mix_pm)
    with pytest.raises(SpecError, match="options"):
        Mix(Mix.Params(strategy="replace_prob", options={"p": 2}), pm=mix_pm)


class Shortest(MixStrategy):
    """The shorter of the two candidates (a stand-in for an LLM fusion strategy)."""

    name = "shortest"

    def mix(self, frame):
        return choose(frame, pl.col("_synthetic").str.len_chars() < pl.col("_original").str.len_chars())


class ShortestPlugin:
    @hookimpl
    def curate_mix_strategies(self):
        return [Shortest]


def test_a_plugin_adds_a_strategy_through_the_hook(mix_pm, register_plugin):
    assert set(available_strategies(mix_pm)) == {"replace_prob", "ratio", "score_gated", "multi", "concat"}
    register_plugin(ShortestPlugin(), "shortest")
    assert available_strategies(mix_pm)["shortest"] is Shortest
    table = pl.DataFrame({"uid": ["a", "b"], "alt_text": ["tiny", "a long alt text"], "caption_realigned": ["longer one", "short"]})
    result = mixed(mix_pm, table, "shortest")
    assert result["caption"].to_list() == ["tiny", "short"]


def test_a_spec_runs_mix_through_the_engine(mix_pm, workdir):
    from curate.testing import run_spec
    from curate.testing.runner import read_step_output

    spec = {"name": "mix", "source": {"path": "pool.parquet"}, "run": {"seed": 3, "shard_size": 7},
            "steps": [{"step": "mix", "params": {"strategy": "ratio", "options": {"fraction": 0.5}}}]}
    table = pool(40).drop("uid").with_columns(pl.format("http://x/{}.jpg", pl.col("alt_text")).alias("url"))
    manifest = run_spec(spec, workdir, tables={"pool.parquet": table}, pm=mix_pm)
    record = next(r for r in manifest["steps"] if r["label"] == "mix")
    assert record["summary"]["target_ratios"] == {"synthetic": 0.5, "original": 0.5}
    output = read_step_output(manifest, "mix")
    assert output.height == 40 and output["caption_source"].value_counts().sort("caption_source").rows() == \
        [("original", 20), ("synthetic", 20)]


def test_basics_alone_does_not_know_mix(pm):
    assert pm.steps.get("mix") is None
    assert curate_basics is not None


def test_replace_prob_records_its_target_in_the_manifest(mix_pm, workdir):
    from curate.testing import run_spec

    spec = {"name": "mix", "source": {"path": "pool.parquet"}, "run": {"shard_size": 9},
            "steps": [{"step": "mix", "params": {"strategy": "replace_prob", "options": {"p": 0.25}}}]}
    table = pool(30).drop("uid").with_columns(pl.format("http://x/{}.jpg", pl.col("alt_text")).alias("url"))
    manifest = run_spec(spec, workdir, tables={"pool.parquet": table}, pm=mix_pm)
    record = next(r for r in manifest["steps"] if r["label"] == "mix")
    assert record["summary"]["target_ratios"] == {"synthetic": 0.25, "original": 0.75}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_score_gated_never_keeps_a_blank_alt_text_over_a_synthetic_caption(mix_pm, data):
    # A CLIP scores the empty string like any text (the world CLIP gives it about 0.2, sometimes
    # more than a realigned caption): the score must not make an empty caption win.
    n = data.draw(st.integers(1, 30))
    alt = data.draw(st.lists(st.sampled_from(["", " ", "\t", "alt text", None]), min_size=n, max_size=n))
    synthetic = data.draw(st.lists(st.sampled_from([None, "", "a red circle", "two stars"]), min_size=n, max_size=n))
    table = pl.DataFrame({
        "uid": [f"{i:016x}" for i in range(n)],
        "alt_text": pl.Series(alt, dtype=pl.Utf8),
        "caption_realigned": pl.Series(synthetic, dtype=pl.Utf8),
        "clip_score": data.draw(st.lists(st.floats(-1, 1), min_size=n, max_size=n)),
        "clip_score_caption_realigned": data.draw(st.lists(st.one_of(st.none(), st.floats(-1, 1)), min_size=n, max_size=n)),
    })
    result = mixed(mix_pm, table, "score_gated", {"margin": data.draw(st.floats(0, 0.5))})
    for row in result.iter_rows(named=True):
        if (row["alt_text"] is None or not row["alt_text"].strip()) and row["caption_realigned"]:
            assert row["caption"] == row["caption_realigned"], row
            assert row["caption_source"] == "synthetic", row


def _broken_strategy(name: str, mix) -> type[MixStrategy]:
    return type(name, (MixStrategy,), {"name": name, "mix": lambda self, frame: mix(frame)})


BROKEN = [
    (_broken_strategy("raises", lambda f: 1 / 0), r"mix strategy 'raises' failed: ZeroDivisionError: division by zero"),
    (_broken_strategy("nothing", lambda f: None), r"mix strategy 'nothing' returned NoneType, not a polars DataFrame"),
    (_broken_strategy("no_source", lambda f: f.select(pl.col("_original").alias("caption"))),
     r"mix strategy 'no_source' did not return its column 'caption_source'"),
    (_broken_strategy("int_caption", lambda f: f.with_columns(pl.lit(1).alias("caption"),
                                                               pl.lit("x").alias("caption_source"))),
     r"mix strategy 'int_caption' returned 'caption' as Int32, not String"),
    (_broken_strategy("short", lambda f: choose(f, pl.lit(True)).head(1)), r"mix strategy 'short' returned 1 rows for 2"),
]


@pytest.mark.parametrize(("strategy", "message"), BROKEN, ids=[s.name for s, _ in BROKEN])
def test_a_plugin_strategys_mistake_names_the_strategy_and_its_plugin(mix_pm, register_plugin, strategy, message):
    from curate.errors import StepError

    class Plugin:
        @hookimpl
        def curate_mix_strategies(self):
            return [strategy]

    register_plugin(Plugin(), "brokenmix")
    table = pl.DataFrame({"uid": ["a", "b"], "alt_text": ["x", "y"], "caption_realigned": ["p", "q"]})
    with pytest.raises(StepError, match=message) as raised:
        mixed(mix_pm, table, strategy.name)
    assert raised.value.hint == "this is a bug in plugin 'brokenmix', which provides the strategy"


def test_a_strategy_name_two_plugins_claim_names_both_plugins(mix_pm, register_plugin):
    class Impostor(MixStrategy):
        name = "replace_prob"

        def mix(self, frame):
            return choose(frame, pl.lit(True))

    class Plugin:
        @hookimpl
        def curate_mix_strategies(self):
            return [Impostor]

    register_plugin(Plugin(), "impostor")
    with pytest.raises(SpecError, match=r"mix strategy 'replace_prob' is provided by both plugin '(mix|impostor)' "
                                        r"and plugin '(impostor|mix)'") as raised:
        available_strategies(mix_pm)
    assert "uninstall one of them" in str(raised.value)


def test_score_gated_refuses_scores_of_two_different_clips(mix_pm):
    """A tiny CLIP's caption scores (mean 0.12) against the world CLIP's alt-text scores (0.41)
    gave 7 of 12 rows to the synthetic caption without a word (blend probe)."""
    from curate_clip.score import ClipScore

    mix = Mix(Mix.Params(strategy="score_gated"), pm=mix_pm)
    alt = ClipScore(ClipScore.Params(), label="clip_score")
    same = ClipScore(ClipScore.Params(texts=["caption_realigned"]), label="score_captions")
    other = ClipScore(ClipScore.Params(texts=["caption_realigned"], model="local-dir:/models/tiny"),
                      label="score_captions")
    assert mix.plan_check_upstream([alt, same]) == []
    (problem,) = mix.plan_check_upstream([alt, other])
    assert "score_gated compares 'clip_score' (step 'clip_score': model 'world-clip-tiny') with " \
           "'clip_score_caption_realigned' (step 'score_captions': model 'local-dir:/models/tiny')" in problem
    assert Mix(Mix.Params(strategy="ratio"), pm=mix_pm).plan_check_upstream([alt, other]) == []
