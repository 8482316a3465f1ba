from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from curate.errors import SpecError
from curate.testing import run_step
from curate.testing import strategies as cst

EXTRA = {"score": cst.scores(), "lang": st.sampled_from(["en", "ja"])}
TABLES = cst.tables(max_rows=20, extra_columns=EXTRA, extra_dtypes={"score": pl.Float64, "lang": pl.Utf8})
COLUMNS = ["url", "alt_text", "score", "lang"]


@given(table=TABLES, keep=st.lists(st.sampled_from(COLUMNS), unique=True))
def test_select_columns_keeps_those_in_order_after_uid(pm, tmp_path, table, keep):
    result = run_step("select", table, {"columns": keep}, pm=pm, workdir=tmp_path)
    assert result.kept.columns == ["uid", *keep]
    assert list(result.schema) == ["uid", *keep]
    assert result.kept.equals(table.select(["uid", *keep]))
    assert result.dropped.height == 0


@given(table=TABLES, exclude=st.lists(st.sampled_from(COLUMNS), unique=True))
def test_select_exclude_removes_exactly_those(pm, tmp_path, table, exclude):
    result = run_step("select", table, {"exclude": exclude}, pm=pm, workdir=tmp_path)
    assert result.kept.columns == [c for c in table.columns if c not in exclude]
    assert result.kept.equals(table.drop(exclude))


@given(table=TABLES, mapping=st.dictionaries(st.sampled_from(COLUMNS), st.sampled_from(["a", "b", "c", "d"]),
                                              max_size=4).filter(lambda m: len(set(m.values())) == len(m)))
def test_rename_changes_names_not_data(pm, tmp_path, table, mapping):
    if not mapping:
        return
    result = run_step("rename", table, {"mapping": mapping}, pm=pm, workdir=tmp_path)
    assert result.kept.columns == [mapping.get(c, c) for c in table.columns]
    assert list(result.schema) == result.kept.columns
    assert result.kept.rename({v: k for k, v in mapping.items()}).equals(table)


def test_rename_can_swap_two_columns(pm):
    table = pl.DataFrame({"uid": ["a"], "url": ["u"], "alt_text": ["t"]})
    result = run_step("rename", table, {"mapping": {"url": "alt_text", "alt_text": "url"}}, pm=pm)
    assert result.kept.row(0, named=True) == {"uid": "a", "alt_text": "u", "url": "t"}


def test_rename_onto_an_existing_column_fails_at_plan_time(pm):
    table = pl.DataFrame({"uid": ["a"], "url": ["u"], "alt_text": ["t"]})
    with pytest.raises(SpecError, match="would overwrite it"):
        run_step("rename", table, {"mapping": {"url": "alt_text"}}, pm=pm)


def test_select_of_a_missing_column_fails_at_plan_time_with_a_suggestion(pm):
    table = pl.DataFrame({"uid": ["a"], "url": ["u"], "alt_text": ["t"]})
    with pytest.raises(SpecError, match="reads column 'alt_txt'"):
        run_step("select", table, {"columns": ["alt_txt"]}, pm=pm)


@pytest.mark.parametrize("step, params, message", [
    ("select", {"exclude": ["uid"]}, "'uid' cannot be excluded"),
    ("select", {}, "exactly one of 'columns' or 'exclude'"),
    ("rename", {"mapping": {"uid": "id"}}, "'uid' cannot be renamed"),
    ("rename", {"mapping": {"url": "x", "alt_text": "x"}}, "same new name"),
])
def test_uid_is_protected_and_params_are_checked(pm, step, params, message):
    with pytest.raises(ValidationError, match=message):
        pm.steps.get(step).Params.model_validate(params)
