"""metadata_balance with a per-language t (MetaCLIP 2): each entry is balanced with its
language's t; a t naming a language the list lacks, or missing one, is a clear error."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.errors import CurateError
from curate.testing import run_spec
from tests.conftest import REPO

ENTRIES = pl.DataFrame({"entry": ["red", "blue", "rot", "blau", "rouge"],
                        "language": ["en", "en", "de", "de", "fr"]})


def spec(workdir: Path, t: Any, shard_size: int = 50) -> dict[str, Any]:
    ENTRIES.write_parquet(workdir / "entries.parquet")
    return {
        "name": "languages",
        "source": {"format": "parquet", "path": "in.parquet"},
        "steps": [{"step": "metadata_match", "params": {"entries": str(workdir / "entries.parquet"),
                                                        "language": "lang"}},
                  {"step": "metadata_balance", "params": {"t": t}}],
        "run": {"dir": "run", "shard_size": shard_size, "seed": 0, "report": False},
    }


def texts(en: int, de: int, fr: int = 3) -> pl.DataFrame:
    rows = ([("a red cup", "en")] * en + [("ein rot Becher", "de")] * de + [("un rouge", "fr")] * fr
            + [("blue", "en")] * 4 + [("blau", "de")] * 4)
    return pl.DataFrame({"url": [f"https://example.com/{i}.jpg" for i in range(len(rows))],
                         "alt_text": [text for text, _ in rows], "lang": [lang for _, lang in rows]})


def counts_of(manifest: dict[str, Any]) -> dict[str, tuple[int, int]]:
    balance = manifest["steps"][-1]
    counts = pl.read_parquet(Path(balance["path"]) / balance["summary"]["counts_file"])
    return {row["entry"]: (row["count"], row["kept"]) for row in counts.iter_rows(named=True)}


@settings(max_examples=5, deadline=None)
@given(en=st.integers(100, 400), de=st.integers(200, 500), t_de=st.integers(10, 60), case=st.integers(0, 10**6))
def test_each_language_is_balanced_with_its_own_t(metadata_pm, tmp_path_factory, en, de, t_de, case):
    """German rows (one entry each, far over their t) are sub-sampled to about t; English rows,
    under their t, are all kept; French, under the default, too."""
    work = tmp_path_factory.mktemp(f"case{case}")
    t = {"en": 1000, "de": t_de, "default": 50}
    manifest = run_spec(spec(work, t), work, tables={"in.parquet": texts(en, de)}, pm=metadata_pm)
    counts = counts_of(manifest)
    assert counts["red"] == (en, en) and counts["blue"] == (4, 4) and counts["rouge"] == (3, 3)
    assert counts["rot"][0] == de and counts["blau"] == (4, 4)
    p = t_de / de
    assert abs(counts["rot"][1] - t_de) <= 5 * math.sqrt(de * p * (1 - p)) + 1
    facts = manifest["steps"][-1]["summary"]
    assert facts["t"] == t and facts["head_entries"] == 1
    assert facts["by_language"]["de"]["t"] == t_de and facts["by_language"]["fr"]["t"] == 50


def test_a_scalar_t_and_an_all_default_t_keep_the_same_rows(metadata_pm, tmp_path):
    table = texts(120, 200)
    kept = []
    for name, t in [("scalar", 30), ("default", {"default": 30}), ("named", {"en": 30, "de": 30, "fr": 30})]:
        manifest = run_spec(spec(tmp_path, t), tmp_path / name, tables={"in.parquet": table}, pm=metadata_pm)
        kept.append(counts_of(manifest))
    assert kept[0] == kept[1] == kept[2]
    assert kept[0]["red"][1] < 120 and kept[0]["rot"][1] < 200


def test_the_report_shows_each_language_t(metadata_pm, tmp_path):
    pytest.importorskip("curate_report")
    from curate_metadata.report import sections

    manifest = run_spec(spec(tmp_path, {"en": 1000, "de": 20, "default": 7}), tmp_path,
                        tables={"in.parquet": texts(30, 60)}, pm=metadata_pm)
    [section] = sections(manifest)
    assert "t = en 1,000, de 20, default 7" in section["html"]


def test_a_language_the_list_lacks_is_an_error_naming_the_list_languages(metadata_pm, tmp_path):
    with pytest.raises(CurateError, match=r"t names language\(s\) es, .*its languages: de, en, fr") as caught:
        run_spec(spec(tmp_path, {"en": 10, "es": 5, "default": 3}), tmp_path,
                 tables={"in.parquet": texts(20, 20)}, pm=metadata_pm)
    assert "use languages of the list" in str(caught.value) + str(caught.value.hint or "")


def test_a_language_without_t_and_no_default_is_an_error(metadata_pm, tmp_path):
    with pytest.raises(CurateError, match=r"no value for language\(s\) fr of the metadata list"):
        run_spec(spec(tmp_path, {"en": 10, "de": 5}), tmp_path, tables={"in.parquet": texts(20, 20)}, pm=metadata_pm)


def test_a_per_language_t_needs_a_list_with_languages(metadata_pm, tmp_path):
    (tmp_path / "entries.txt").write_text("red\nrot\n")
    world_spec = spec(tmp_path, {"en": 10})
    world_spec["steps"][0]["params"] = {"entries": str(tmp_path / "entries.txt")}
    with pytest.raises(CurateError, match="t is given per language, but the metadata list has no languages"):
        run_spec(world_spec, tmp_path, tables={"in.parquet": texts(20, 20)}, pm=metadata_pm)


def test_an_empty_per_language_t_is_rejected(metadata_pm, tmp_path):
    with pytest.raises(CurateError, match="at least one language"):
        run_spec(spec(tmp_path, {}), tmp_path, tables={"in.parquet": texts(5, 5)}, pm=metadata_pm)


def test_validate_names_the_list_languages_before_anything_runs(curate_cli, write_spec, workdir):
    """`curate validate`: a t for a language the list lacks exits 2 at plan time, with the hint."""
    bad = spec(workdir, {"en": 10, "es": 5})
    bad["source"]["path"] = "data.parquet"
    write_spec(bad, table=texts(5, 5))
    result = curate_cli("validate", "spec.yaml", pythonpath=[REPO, REPO / "plugins"])
    assert result.code == 2, result
    assert "t names language(s) es" in result.stderr and "its languages: de, en, fr" in result.stderr
    assert "(use languages of the list" in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert not (workdir / "run").exists()


def test_a_per_language_t_without_metadata_match_upstream_is_an_error(metadata_pm, tmp_path):
    from curate.testing import run_step

    table = pl.DataFrame({"uid": ["a", "b"], "metadata_entries": pl.Series([[0], [1]], dtype=pl.List(pl.Int64))})
    with pytest.raises(CurateError, match="no languages \\(no metadata_match upstream\\)"):
        run_step("metadata_balance", table, {"t": {"en": 3}}, pm=metadata_pm, workdir=tmp_path)
