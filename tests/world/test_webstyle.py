"""Web-styled alt-texts: how the text is written changes, what it says does not (or is recorded)."""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from curate_world.alttext import write_alt_text
from curate_world.attributes import extract_attributes, score_caption
from curate_world.cli import world as world_commands
from curate_world.describe import describe
from curate_world.errors import WorldError
from curate_world.generate import generate_world
from curate_world.params import WorldParams
from curate_world.phrasing import plural
from curate_world.scene import Scene
from curate_world.testing import scenes, seeds
from curate_world.translate import translate
from curate_world.vocab import COLOR_SYNONYMS, SHAPE_SYNONYMS
from curate_world.webstyle import (
    LOSSY,
    STYLE_GROUPS,
    STYLES,
    WEB_MIX_RATE,
    apply_styles,
    applicable,
    normalize_web_text,
    style_weights,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import read

PRESERVING = tuple(s for s in STYLES if s not in LOSSY)
KINDS = ("faithful", "partial", "wrong_attribute", "boilerplate", "empty")


def plain_alt_text(scene: Scene, kind: str, seed: int) -> str:
    return write_alt_text(scene, kind, np.random.default_rng(seed)).text


def within_binomial(count: int, n: int, p: float, sigmas: float = 4.5) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


@settings(max_examples=150, deadline=None)
@given(scenes(), st.sampled_from(KINDS), seeds, st.sets(st.sampled_from(PRESERVING), min_size=1, max_size=4))
def test_preserving_styles_keep_what_the_scorer_reads(scene: Scene, kind: str, seed: int, chosen: set[str]) -> None:
    text = plain_alt_text(scene, kind, seed)
    by_group = {STYLE_GROUPS[s]: s for s in sorted(chosen)}  # one per group, as draw_styles does
    styles = tuple(s for s in STYLES if s in by_group.values() and applicable(s, text))
    styled = apply_styles(text, styles, np.random.default_rng(seed + 1))
    assert styled.styles == styles
    assert score_caption(normalize_web_text(styled.text), scene) == score_caption(text, scene), styled
    assert score_caption(normalize_web_text(text), scene) == score_caption(text, scene)


@settings(max_examples=100, deadline=None)
@given(scenes(), seeds)
def test_synonyms_are_scored_as_their_canonical_word(scene: Scene, seed: int) -> None:
    text = describe(scene)
    styled = apply_styles(text, ("synonym",), np.random.default_rng(seed))
    assert styled.detail["synonym"] and styled.text != text
    for canonical, synonym in styled.detail["synonym"].items():
        assert (COLOR_SYNONYMS | SHAPE_SYNONYMS)[synonym] == canonical
        assert re.search(rf"\b{canonical}\b", styled.text) is None
    assert score_caption(styled.text, scene) == score_caption(text, scene)
    assert extract_attributes(styled.text) == extract_attributes(text)


@pytest.mark.parametrize(
    ("synonym_text", "canonical_text"),
    [
        ("two crimson discs and a navy rhombus", "two red circles and a blue diamond"),
        ("a golden plus sign, two ivory plus signs", "a yellow cross, two white crosses"),
        ("an emerald hex on a cream background", "a green hexagon on a beige background"),
        ("three chocolate boxes and a violet pentagram", "three brown squares and a purple star"),
    ],
)
def test_the_extractor_knows_the_synonyms(synonym_text: str, canonical_text: str) -> None:
    assert extract_attributes(synonym_text) == extract_attributes(canonical_text)


@settings(max_examples=100, deadline=None)
@given(scenes(), st.sampled_from(("faithful", "partial", "wrong_attribute")), seeds)
def test_lossy_styles_record_what_they_changed(scene: Scene, kind: str, seed: int) -> None:
    text = plain_alt_text(scene, kind, seed)
    rng = np.random.default_rng(seed)
    if applicable("misspelling", text):
        typo = apply_styles(text, ("misspelling",), rng)
        word, wrong = typo.detail["misspelling"]["word"], typo.detail["misspelling"]["as"]
        assert wrong != word and wrong.lower() not in (COLOR_SYNONYMS | SHAPE_SYNONYMS)
        at = typo.text.index(wrong) if typo.text.count(wrong) == 1 else None
        if at is not None:
            assert typo.text[:at] + word + typo.text[at + len(wrong) :] == text
    cut = apply_styles(text, ("truncation",), rng)
    detail = cut.detail["truncation"]
    kept = text[: detail["at"]]
    assert cut.text.removesuffix("…").removesuffix("...") == kept and len(kept) < len(text)
    assert kept[-1].isalpha() and text[detail["at"]].isalpha()  # mid-word
    if applicable("language", text):
        translated = apply_styles(text, ("language",), rng)
        assert translated.detail["language"] in ("es", "de") and translated.text != text


@settings(max_examples=150, deadline=None)
@given(scenes(), st.sampled_from(("faithful", "partial", "wrong_attribute")), seeds, st.sampled_from(("es", "de")))
def test_the_world_edit_vocabulary_reads_a_translation_as_the_english(scene: Scene, kind: str, seed: int,
                                                                      language: str) -> None:
    """``edits: world`` compares a translated alt-text with its edits as it reads it: the same
    colours, shapes (in their number) and counts as the English it was translated from."""
    from curate_clip.api import EditVocabulary
    from curate_clip.edits import COUNT_OF, reading
    from curate_world.vocab import edit_vocabulary

    vocabulary = EditVocabulary.model_validate(edit_vocabulary())

    def said(text: str) -> tuple[list[tuple[str, str, bool]], list[int]]:
        read = reading(text, vocabulary)
        words = sorted(vocabulary._forms[" ".join(m.group(1).lower().split())] for m in vocabulary._pattern.finditer(read))
        counts = sorted(COUNT_OF[m.group(1).lower()] for m in vocabulary._count_pattern.finditer(read))
        return words, counts

    english = plain_alt_text(scene, kind, seed)
    assert said(translate(english, language)) == said(english), (english, translate(english, language))


def test_translation_agrees_in_gender_and_number() -> None:
    assert translate("two small red circles and a blue star", "es") == "dos círculos rojos pequeños y una estrella azul"
    assert translate("two small red circles and a blue star", "de") == "zwei kleine rote Kreise und ein blauer Stern"
    assert translate("An orange diamond on a gray background", "de") == "Eine orangefarbene Raute auf grauem Hintergrund"
    assert translate("two red circles on a striped beige background", "es") == "dos círculos rojos sobre fondo beige a rayas"
    assert translate("a pink heart", "de") == "ein rosa Herz"
    with pytest.raises(ValueError, match="unknown language"):
        translate("a red circle", "fr")


def test_normalisation_undoes_markup() -> None:
    assert normalize_web_text("<b>&#39;Two Red Circles &amp; A&nbsp;Star&#39;</b><br>") == "'Two Red Circles & A Star'"
    assert normalize_web_text("✨ red-circle_blue-square-min.JPG ❤️👍") == "red circle blue square min"


def test_a_styled_world_keeps_what_its_alt_texts_say(tmp_path: Path) -> None:
    plain = generate_world(tmp_path / "plain", n=300, seed=4, eval_n=0)
    styled = generate_world(tmp_path / "web", n=300, seed=4, eval_n=0, web_style_rate=WEB_MIX_RATE)
    a, b = read(plain), read(styled)
    assert "styles" not in a.columns
    assert b["alt_text_plain"].to_list() == a["alt_text"].to_list()  # styling never changes the content
    for column in ("description", "fault", "objects"):
        assert b[column].to_list() == a[column].to_list()
    for before, after in zip(a.iter_rows(named=True), b.iter_rows(named=True)):  # curate_world.cut
        if after["noise_detail"] != before["noise_detail"]:
            assert (before["noise_type"], after["noise_type"]) == ("wrong_attribute", "partial")
            assert after["noise_detail"] == f"truncated before its wrong part ({before['noise_detail']})"
            assert "truncation" in after["styles"]
        else:
            assert after["noise_type"] == before["noise_type"]
    assert (plain.dir / "images/000007.jpg").read_bytes() == (styled.dir / "images/000007.jpg").read_bytes()
    rows = b.to_dicts()
    assert any(r["alt_text"] != r["alt_text_plain"] for r in rows)
    multi = 0
    for row in rows:
        if not row["styles"]:
            assert row["alt_text"] == row["alt_text_plain"] and row["style_detail"] is None
            continue
        detail = json.loads(row["style_detail"])
        assert set(detail) <= set(row["styles"]) and list(row["styles"]) == sorted(row["styles"], key=STYLES.index)
        if row["alt_mentions_entity"]:
            assert row["entity"].lower() in normalize_web_text(row["alt_text"]).lower()
        if "multi_alt" in row["styles"]:
            multi += 1
            texts = json.loads(row["alt_texts"])
            assert texts[0]["text"] == row["alt_text"] and texts[0]["noise_type"] == row["noise_type"]
            kinds = [t["noise_type"] for t in texts]
            assert 2 <= len(texts) <= 3 and len(set(kinds)) == len(kinds) and detail["multi_alt"] == kinds
        else:
            assert row["alt_texts"] is None
    assert multi > 0
    assert styled.counts["styled_rows"] == sum(bool(r["styles"]) for r in rows)


@settings(max_examples=4, deadline=None)
@given(st.floats(0.05, 0.95), st.integers(0, 10_000))
def test_styled_worlds_are_deterministic_and_styled_at_their_rate(rate: float, seed: int) -> None:
    n = 400
    with tempfile.TemporaryDirectory() as tmp:
        first = generate_world(Path(tmp) / "a", n=n, seed=seed, eval_n=0, web_style_rate=rate)
        second = generate_world(Path(tmp) / "b", n=n, seed=seed, eval_n=0, web_style_rate=rate)
        assert first.world_table.read_bytes() == second.world_table.read_bytes()
        assert (first.dir / "realigned.parquet").read_bytes() == (second.dir / "realigned.parquet").read_bytes()
        table = read(first)
    styled = int((table["styles"].list.len() > 0).sum())
    assert within_binomial(styled, n, rate), (styled, n * rate)
    # Every style is drawn (equal weights): each lands on at least a few of the styled rows.
    counts = first.counts["styles"]
    assert all(counts[name] > 0 for name in STYLES if styled > 150), counts


def test_style_weights_shift_the_mix(tmp_path: Path) -> None:
    world = generate_world(
        tmp_path / "w", n=200, seed=2, eval_n=0, web_style_rate=1.0,
        web_style_weights={"all_caps": 1.0, "file_name": 3.0},
    )
    counts = world.counts["styles"]
    assert set(name for name, count in counts.items() if count) == {"all_caps", "file_name"}
    assert counts["file_name"] > counts["all_caps"] > 0
    table = read(world)
    caps = table.filter(pl.col("styles").list.contains("all_caps") & ~pl.col("styles").list.contains("file_name"))
    assert (caps["alt_text"] == caps["alt_text"].str.to_uppercase()).all()


def test_web_knobs_are_validated_and_off_by_default(tmp_path: Path) -> None:
    params = WorldParams()
    assert "web_style_rate" not in params.model_dump() and "web_style_weights" not in params.model_dump()
    assert WorldParams(web_style_rate=0.5).digest() != params.digest()
    assert WorldParams(web_style_rate=0.0).digest() == params.digest()
    assert style_weights(None) == dict.fromkeys(STYLES, 1.0)
    for bad in ({"web_style_rate": 1.5}, {"web_style_weights": {"bold": 1.0}}, {"web_style_weights": {"emoji": 0}}):
        with pytest.raises(WorldError, match="web_style"):
            generate_world(tmp_path / "bad", n=10, **bad)  # type: ignore[arg-type]


def test_cli_web_style_preset(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "drifted"
    result = runner.invoke(
        world_commands,
        ["generate", str(out), "--n", "40", "--seed", "1001", "--eval-n", "0", "--web-style", "web",
         "--noise-rates", "partial=0.3,unrelated=0.2", "--concept-skew", "1.0"],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "world.json").read_text())
    assert manifest["params"]["web_style_rate"] == WEB_MIX_RATE and "styles" in manifest["counts"]
    result = runner.invoke(
        world_commands,
        ["generate", str(tmp_path / "w2"), "--n", "20", "--web-style-weights", "caps=1"],
    )
    assert result.exit_code != 0 and "unknown web style" in str(result.exception or result.output)


def test_plural_synonyms_read_back() -> None:
    for synonym, canonical in SHAPE_SYNONYMS.items():
        if synonym != "plus":
            assert extract_attributes(f"two red {plural(synonym)}").shapes == {canonical: 2}


@pytest.mark.network
def test_a_spec_reads_the_web_style_ground_truth(pm, register_plugin, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    import curate_world
    from curate_world.source import SCHEMA

    from curate.testing.runner import read_step_output, run_spec

    register_plugin(curate_world, name="world", version=curate_world.__version__)
    spec = {
        "name": "web_world",
        "source": {"format": "world", "params": {"n": 60, "seed": 5, "dir": "world", "web_style_rate": 0.5}},
        "steps": [{"step": "filter", "name": "reachable", "params": {"where": "gt_fault = 'none'"}}],
    }
    rows = read_step_output(run_spec(spec, workdir, pm=pm), "reachable")
    assert set(SCHEMA) <= set(rows.columns)
    assert rows.schema["gt_styles"] == pl.List(pl.String)
    world = read_table(workdir / "world" / "world.parquet").rename({"alt_text": "world_alt_text"})
    joined = rows.join(world, on="world_id")
    assert (joined["alt_text"] == joined["world_alt_text"]).all()
    assert (joined["gt_alt_text_plain"] == joined["alt_text_plain"]).all()
    assert joined.filter(pl.col("gt_styles").list.len() > 0).height > 0


def read_table(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path)


def test_web_eval_measures_the_world_clip_per_style(tmp_path: Path) -> None:
    pytest.importorskip("open_clip")
    from curate_world.web_eval import main

    world = generate_world(tmp_path / "w", n=60, seed=5003, eval_n=0, fault_rate=0.0, web_style_rate=1.0)
    assert main([str(world.dir), "--captioner", "--split", "train", "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    result = report["clip"]
    assert report["captioner"]["all"]["rows"] == report["captioner"]["styled"]["rows"] + (
        report["captioner"]["unstyled"] or {"rows": 0}
    )["rows"]
    assert result["styled"]["positives"] + result["styled"]["negatives"] > 0
    assert set(result["by_style"]) == set(STYLES) and 0.0 <= result["all"]["auc"] <= 1.0
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nothing")])
