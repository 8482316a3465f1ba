"""The one schema of a source's files (curate_basics.file_schemas.common_schema): with the columns
the run carries named (``source.keep``), files may differ in any other column, and must still
agree on those."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.errors import SourceError
from curate_basics.file_schemas import common_schema

TYPES = st.sampled_from([pl.Utf8, pl.Int64, pl.Float64, pl.Boolean])
OTHER = st.dictionaries(st.sampled_from(["license", "width", "lang", "nsfw", "score2"]), TYPES, max_size=4)
CARRIED = {"url": pl.Utf8, "alt_text": pl.Utf8, "score": pl.Float64}


@settings(max_examples=100, deadline=None)
@given(others=st.lists(OTHER, min_size=1, max_size=5), dropped=st.sampled_from([None, "url", "score"]))
def test_files_agree_on_the_carried_columns_whatever_the_others(others, dropped):
    """Any columns outside the carried ones, in any file, are left out; a carried column missing
    from one file is still an error naming it."""
    schemas = [(Path(f"/data/day-{i}.parquet"), {**CARRIED, **other}) for i, other in enumerate(others)]
    carried = frozenset(CARRIED)
    assert common_schema(schemas, carried) == CARRIED
    if dropped is None or len(schemas) < 2:
        return
    last_path, last = schemas[-1]
    schemas[-1] = (last_path, {c: d for c, d in last.items() if c != dropped})
    with pytest.raises(SourceError, match=f"{last_path} has no column '{dropped}'"):
        common_schema(schemas, carried)


def test_without_carried_columns_every_column_must_agree():
    schemas = [(Path("/a.parquet"), dict(CARRIED)), (Path("/b.parquet"), {**CARRIED, "license": pl.Utf8})]
    with pytest.raises(SourceError, match="has column 'license'") as caught:
        common_schema(schemas)
    assert "source.keep" in str(caught.value.hint)
