from __future__ import annotations

import unicodedata
from typing import Any

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from curate.schema import DUPLICATE_OF
from curate.testing import run_step
from curate.testing import strategies as cst
from tests.invariants import assert_nothing_lost, rows_by_uid, uids

SCORED = cst.tables(extra_columns={"score": st.one_of(st.none(), st.sampled_from([0.1, 0.5, 0.9]))},
                    extra_dtypes={"score": pl.Float64})

POLICIES = st.sampled_from([
    {"keep": "first"}, {"keep": "last"}, {"keep": "max", "order_by": "score"}, {"keep": "min", "order_by": "score"},
])


def _fold(text: str) -> str:
    # Unicode canonical caseless matching (D145): NFD, full case folding, NFC.
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", text).casefold())


def expected_survivors(table: pl.DataFrame, params: dict[str, Any]) -> dict[tuple, str | None]:
    """key → survivor uid, computed row by row in Python (the oracle). A None key part never
    matches anything unless nulls_equal, in which case its rows share the survivor None-keyed."""
    rows = table.to_dicts()
    keep = params.get("keep", "first")
    groups: dict[tuple, list[tuple[int, dict]]] = {}
    for position, row in enumerate(rows):
        key = tuple(
            _fold(row[c]) if params.get("ignore_case") and isinstance(row[c], str) else row[c]
            for c in params["columns"]
        )
        if None in key and not params.get("nulls_equal"):
            continue
        groups.setdefault(key, []).append((position, row))
    survivors = {}
    for key, members in groups.items():
        if keep == "first":
            survivor = members[0]
        elif keep == "last":
            survivor = members[-1]
        else:
            column = params["order_by"]
            valued = [m for m in members if m[1][column] is not None]
            if not valued:
                survivor = members[0]  # all NULL: ties go to the earliest row
            else:
                best = (max if keep == "max" else min)(m[1][column] for m in valued)
                survivor = next(m for m in valued if m[1][column] == best)
        survivors[key] = survivor[1]["uid"]
    return survivors


@given(table=SCORED, policy=POLICIES, columns=st.sampled_from([["alt_text"], ["url", "alt_text"]]),
       ignore_case=st.booleans(), nulls_equal=st.booleans(), shard_size=st.sampled_from([4, 1000]))
def test_exactly_one_survivor_per_key_chosen_by_the_keep_policy(pm, tmp_path, table, policy, columns,
                                                                ignore_case, nulls_equal, shard_size):
    params = {"columns": columns, "ignore_case": ignore_case, "nulls_equal": nulls_equal, **policy}
    result = run_step("exact_dedup", table, params, pm=pm, shard_size=shard_size, workdir=tmp_path)
    assert_nothing_lost(table, result)

    survivors = expected_survivors(table, params)
    kept = set(uids(result.kept))
    assert set(survivors.values()) <= kept
    grouped_uids = _grouped_uids(table, params)
    # Rows outside any group (NULL key, nulls not equal) are always kept.
    assert set(uids(table)) - grouped_uids <= kept
    assert kept & grouped_uids == set(survivors.values())

    # Every dropped row points at the survivor of its own key.
    by_uid = rows_by_uid(table)
    for dropped_uid, survivor in result.duplicate_of.items():
        assert survivor in kept
        assert _key(by_uid[dropped_uid], params) == _key(by_uid[survivor], params)
        assert survivors[_key(by_uid[dropped_uid], params)] == survivor
    assert set(result.duplicate_of) == set(uids(result.dropped))
    assert set(result.drop_reasons) <= {"exact_dedup"}
    assert DUPLICATE_OF not in result.kept.columns


@settings(max_examples=12)
@given(table=SCORED, policy=POLICIES, nulls_equal=st.booleans())
def test_dedup_is_idempotent(pm, tmp_path, table, policy, nulls_equal):
    params = {"columns": ["url", "alt_text"], "nulls_equal": nulls_equal, **policy}
    once = run_step("exact_dedup", table, params, pm=pm, workdir=tmp_path)
    twice = run_step("exact_dedup", once.kept, params, pm=pm, workdir=tmp_path)
    assert twice.kept.equals(once.kept)
    assert twice.dropped.height == 0


def _key(row: dict, params: dict) -> tuple:
    return tuple(
        _fold(row[c]) if params.get("ignore_case") and isinstance(row[c], str) else row[c] for c in params["columns"]
    )


def _grouped_uids(table: pl.DataFrame, params: dict) -> set[str]:
    return {
        row["uid"] for row in table.iter_rows(named=True)
        if params.get("nulls_equal") or None not in _key(row, params)
    }


def test_keep_max_breaks_ties_towards_the_earliest_row_and_puts_nulls_last(pm):
    table = pl.DataFrame({
        "uid": ["a", "b", "c", "d", "e"],
        "url": ["u"] * 5,
        "alt_text": ["same"] * 4 + ["other"],
        "score": [None, 0.5, 0.9, 0.9, None],
    })
    result = run_step("exact_dedup", table, {"columns": ["alt_text"], "keep": "max", "order_by": "score"}, pm=pm)
    assert uids(result.kept) == ["c", "e"]
    assert result.duplicate_of == {"a": "c", "b": "c", "d": "c"}


def test_keep_last_keeps_the_last_row_across_shards(pm):
    table = pl.DataFrame({"uid": list("abcdefg"), "url": ["u"] * 7, "alt_text": ["x", "y"] * 3 + ["x"]})
    result = run_step("exact_dedup", table, {"columns": ["alt_text"], "keep": "last"}, pm=pm, shard_size=2)
    assert uids(result.kept) == ["f", "g"]
    assert result.duplicate_of == {"a": "g", "c": "g", "e": "g", "b": "f", "d": "f"}


@pytest.mark.parametrize("params, message", [
    ({"columns": ["alt_text"], "keep": "max"}, "needs 'order_by'"),
    ({"columns": ["alt_text"], "order_by": "score"}, "only applies to keep max/min"),
    ({"columns": []}, "at least 1"),
    ({"columns": ["alt_text"], "keep": "biggest"}, "'first', 'last', 'max' or 'min'"),
])
def test_inconsistent_params_are_rejected(pm, params, message):
    with pytest.raises(ValidationError, match=message):
        pm.steps.get("exact_dedup").Params.model_validate(params)


@settings(max_examples=10, deadline=None)
@given(table=SCORED, policy=POLICIES)
def test_same_survivors_with_or_without_duckdb_file_index(pm, tmp_path_factory, table, policy):
    """The duplicates query numbers shards by DuckDB's ``file_index`` where it has one, else by a
    CASE over the file name: the same drops and survivors either way."""
    from curate import duck

    params = {"columns": ["url", "alt_text"], **policy}
    results = []
    saved = dict(duck._HAS_FILE_INDEX)
    try:
        for supported in (True, False):
            duck._HAS_FILE_INDEX["on"] = supported
            results.append(run_step("exact_dedup", table, params, pm=pm, shard_size=3,
                                    workdir=tmp_path_factory.mktemp("dedup")))
    finally:
        duck._HAS_FILE_INDEX.clear()
        duck._HAS_FILE_INDEX.update(saved)
    assert results[0].kept.equals(results[1].kept)
    assert results[0].duplicate_of == results[1].duplicate_of


CASE_PIECES = ["straße", "STRASSE", "Strasse", "ΣΑΣ", "σας", "İSTANBUL", "istanbul", "i\u0307stanbul", "café",
               "CAFE\u0301", "cafe", "ﬁ", "FI", "K", "k"]


def test_ignore_case_is_full_case_folding_without_locale_rules(pm, tmp_path):
    """One rule with metadata_match's ignore_case (curate.caseless.fold); DuckDB's lower() kept
    'straße' apart from 'STRASSE' and made 'İSTANBUL' 'istanbul'."""
    texts = ["straße", "STRASSE", "ΣΑΣ", "σας", "İSTANBUL", "istanbul", "i\u0307stanbul", "café",
             "CAFE\u0301"]
    table = pl.DataFrame({"uid": [f"u{i}" for i in range(len(texts))], "alt_text": texts})
    result = run_step("exact_dedup", table, {"columns": ["alt_text"], "ignore_case": True}, pm=pm,
                      workdir=tmp_path)
    assert result.duplicate_of == {"u1": "u0", "u3": "u2", "u6": "u4", "u8": "u7"}


@settings(max_examples=8)
@example(texts=["straße", "STRASSE", None, "İSTANBUL", "istanbul"], shard_size=3)
@given(texts=st.lists(st.one_of(st.none(), st.lists(st.sampled_from(CASE_PIECES), max_size=2).map(" ".join)),
                      max_size=16), shard_size=st.sampled_from([3, 1000]))
def test_ignore_case_dedups_as_the_folded_texts_do(pm, tmp_path, texts, shard_size):
    uids_ = [f"u{i:02d}" for i in range(len(texts))]
    table = pl.DataFrame({"uid": uids_, "alt_text": texts}, schema={"uid": pl.Utf8, "alt_text": pl.Utf8})
    folded = table.with_columns(pl.col("alt_text").map_elements(_fold, return_dtype=pl.Utf8))
    caseless = run_step("exact_dedup", table, {"columns": ["alt_text"], "ignore_case": True}, pm=pm,
                        shard_size=shard_size, workdir=tmp_path)
    plain = run_step("exact_dedup", folded, {"columns": ["alt_text"]}, pm=pm, shard_size=shard_size,
                     workdir=tmp_path)
    assert caseless.duplicate_of == plain.duplicate_of
