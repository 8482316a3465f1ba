"""Metadata steps at the edges a spec writer reaches: a list naming an entry twice, an output
column that would overwrite the texts it matches, and a column of nulls where entry ids belong."""

from __future__ import annotations

import polars as pl
import pytest
from curate_metadata.entries import MetadataError, load_entries
from pydantic import ValidationError

from curate.testing import run_step


@pytest.mark.parametrize(("text", "suffix"), [("red\nblue\nred\nred\n", ".txt"), (None, ".parquet")])
def test_an_entry_listed_twice_is_refused_naming_it(tmp_path, text, suffix):
    """Each copy got an id and was balanced to about t rows on its own: three copies of 'red'
    kept 298 rows at t = 100 where one kept 103."""
    path = tmp_path / f"entries{suffix}"
    if text is not None:
        path.write_text(text)
    else:
        pl.DataFrame({"entry": ["red", "blue", "red"], "language": ["en", "en", "en"]}).write_parquet(path)
    with pytest.raises(MetadataError, match=r"entry 'red'.* is listed (3|2) times \(entries 1 and 3 of the list\)"):
        load_entries(str(path), need_languages=suffix == ".parquet")


def test_the_same_entry_in_two_languages_is_two_entries(tmp_path):
    path = tmp_path / "entries.parquet"
    pl.DataFrame({"entry": ["rot", "rot"], "language": ["de", "nl"]}).write_parquet(path)
    assert load_entries(str(path), need_languages=True).entries == ("rot", "rot")


@pytest.mark.parametrize(("output", "said"), [("alt_text", "a column it matches"), ("uid", "the row's id"),
                                              ("", "'output' is empty"), ("_ids", "starts with '_'")])
def test_match_output_is_a_column_of_its_own(output, said):
    from curate_metadata.match import MetadataMatchParams

    with pytest.raises(ValidationError, match=said):
        MetadataMatchParams(output=output)


def test_balance_refuses_a_null_typed_entries_column():
    table = pl.DataFrame({"uid": ["a"], "url": ["u"], "alt_text": ["t"], "metadata_entries": [None]})
    from curate.errors import SpecError

    with pytest.raises(SpecError, match="column 'metadata_entries' is all null \\(type Null\\) here"):
        run_step("metadata_balance", table, {"t": 1})
