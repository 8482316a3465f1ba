"""metadata_match as the engine runs it: ids per row, drops, lists from files, clear errors."""

from __future__ import annotations

import polars as pl
import pytest
from curate_metadata.match import NO_MATCH
from curate_metadata.matching import reference_match
from curate_world.vocab import concept_names
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.errors import SpecError
from curate.testing import run_step
from curate.testing import strategies as cst
from tests.invariants import assert_nothing_lost

WORDS = ["red", "circle", "Red", "blue square", "a", "star", "the"]


def rows(texts, **more):
    return pl.DataFrame({"uid": [f"{i:016x}" for i in range(len(texts))], "alt_text": texts, **more})


def write_list(tmp_path, entries_):
    path = tmp_path / "entries.txt"
    path.write_text("\n".join(entries_) + "\n")
    return str(path)


@settings(max_examples=15)
@given(table=cst.tables(max_rows=25, extra_columns={"title": st.one_of(st.none(), cst.alt_texts())}),
       entries_=st.lists(st.sampled_from(WORDS), min_size=1, max_size=5, unique=True),
       drop=st.booleans())
def test_ids_per_row_are_those_of_the_reference_loop_over_every_column(metadata_pm, tmp_path, table, entries_, drop):
    params = {"entries": write_list(tmp_path, entries_), "columns": ["alt_text", "title"], "drop_unmatched": drop}
    result = run_step("metadata_match", table, params, pm=metadata_pm, shard_size=7, workdir=tmp_path)
    assert_nothing_lost(table, result)
    every = pl.concat([result.kept, result.dropped], how="diagonal_relaxed") if result.dropped.height else result.kept
    for row in every.iter_rows(named=True):
        expected = sorted(set(reference_match(row["alt_text"], entries_)) | set(reference_match(row["title"], entries_)))
        assert row["metadata_entries"] == expected
        assert (row.get("_drop_reason") == NO_MATCH) == (drop and not expected)


def test_the_default_list_is_the_worlds_concept_names(metadata_pm):
    names = concept_names()
    table = rows(["A red circle on a white background", "the Velmora Cola logo", "click here", None])
    result = run_step("metadata_match", table, {"ignore_case": True, "columns": "alt_text"}, pm=metadata_pm)
    assert [[names[i] for i in ids] for ids in result.kept["metadata_entries"]] == [
        ["circle", "red", "white"], ["Velmora Cola"]]
    assert result.drop_reasons == {NO_MATCH: 2}


def test_a_table_with_languages_matches_each_text_in_its_language(metadata_pm, tmp_path):
    path = tmp_path / "entries.csv"
    pl.DataFrame({"entry": ["rot", "red", "Haus", "house"], "language": ["de", "en", "de", "en"]}).write_csv(path)
    table = rows(["a red house", "ein rot Haus", "red Haus"], lang=["en", "de", "fr"])
    result = run_step("metadata_match", table, {"entries": str(path), "language": "lang", "drop_unmatched": False},
                      pm=metadata_pm)
    assert result.kept["metadata_entries"].to_list() == [[1, 3], [0, 2], []]


@pytest.mark.parametrize(("params", "message"), [
    ({"entries": "nowhere.txt"}, "does not exist"),
    ({"entries": "{tmp}/e.csv", "entry_column": "word"}, "has no column 'word'"),
    ({"entries": "{tmp}/e.txt", "language": "lang"}, "plain list"),
    ({"language": "lang"}, "no languages"),
    ({"entries": "{tmp}/blank.txt"}, "has no entries"),
])
def test_a_bad_list_fails_at_plan_time_saying_how_to_fix_it(metadata_pm, tmp_path, params, message):
    pl.DataFrame({"entry": ["red"]}).write_csv(tmp_path / "e.csv")
    (tmp_path / "e.txt").write_text("red\n")
    (tmp_path / "blank.txt").write_text("\n  \n")
    params = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in params.items()}
    with pytest.raises(SpecError, match=message):
        run_step("metadata_match", rows(["red"], lang=["en"]), params, pm=metadata_pm)


def test_without_the_world_the_default_list_is_a_clear_error(metadata_pm, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "curate_world.api", None)  # import fails as if not installed
    with pytest.raises(SpecError, match="curate_world is not installed"):
        run_step("metadata_match", rows(["red"]), {}, pm=metadata_pm)
