from __future__ import annotations

import polars as pl
import pytest
from curate_dedup.exact import DedupExactParams, text_key
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from curate.schema import DROP_REASON
from curate.testing import run_step
from curate.testing import strategies as cst
from tests.dedup.test_groups import reference_components
from tests.invariants import assert_nothing_lost, uids

HASHES = st.one_of(st.none(), st.sampled_from(["aa", "bb", "cc", "dd"]))
TABLES = cst.tables(extra_columns={"sha256": HASHES, "clip_score": st.one_of(st.none(), st.sampled_from([0.1, 0.5]))},
                    extra_dtypes={"sha256": pl.Utf8, "clip_score": pl.Float64})
POLICIES = st.sampled_from([{"keep": "first"}, {"keep": "last"}, {"keep": "max", "order_by": "clip_score"},
                            {"keep": "min", "order_by": "clip_score"}])
KEYS = st.sampled_from([{"by": ["image"]}, {"by": ["text"]}, {"by": ["image", "text"]},
                        {"by": ["image", "text"], "match": "all"}])


def normalized(texts: list[str | None]) -> list[str | None]:
    return pl.DataFrame({"t": texts}, schema={"t": pl.Utf8}).select(text_key(pl.col("t")))["t"].to_list()


def expected_groups(table: pl.DataFrame, params: dict) -> list[int]:
    """Component label per row, by a plain-Python union-find over rows sharing a key."""
    images = table["sha256"].to_list()
    texts = normalized(table["alt_text"].to_list())
    if params.get("match") == "all":
        keys = [[(i, t) if i is not None and t is not None else None for i, t in zip(images, texts)]]
    else:
        keys = [images if k == "image" else texts for k in params["by"]]
    edges = []
    for column in keys:
        first: dict = {}
        for row, key in enumerate(column):
            if key is not None:
                edges.append((row, first.setdefault(key, row)))
    return reference_components(table.height, edges)


@given(table=TABLES, keys=KEYS, policy=POLICIES, shard_size=st.sampled_from([3, 1000]))
def test_one_survivor_per_group_chosen_by_the_policy(dedup_pm, tmp_path, table, keys, policy, shard_size):
    params = {**keys, **policy}
    result = run_step("dedup_exact", table, params, pm=dedup_pm, shard_size=shard_size, workdir=tmp_path)
    assert_nothing_lost(table, result)
    labels = expected_groups(table, params)
    kept = set(uids(result.kept))
    rows = table.with_row_index("position").to_dicts()
    for label in set(labels):
        members = [r for r, lab in zip(rows, labels) if lab == label]
        survivors = [m for m in members if m["uid"] in kept]
        assert len(survivors) == 1
        keep = policy["keep"]
        if keep == "first":
            assert survivors[0] is members[0]
        elif keep == "last":
            assert survivors[0] is members[-1]
        else:
            valued = [m["clip_score"] for m in members if m["clip_score"] is not None]
            if valued:
                best = max(valued) if keep == "max" else min(valued)
                assert survivors[0] == next(m for m in members if m["clip_score"] == best)
            else:
                assert survivors[0] is members[0]
    survivor_of = {m["uid"]: s["uid"] for label in set(labels)
                   for s in [next(r for r, lab in zip(rows, labels) if lab == label and r["uid"] in kept)]
                   for m in [r for r, lab in zip(rows, labels) if lab == label]}
    for dropped, survivor in result.duplicate_of.items():
        assert survivor_of[dropped] == survivor


@given(table=TABLES, keys=KEYS, policy=POLICIES)
def test_dedup_exact_is_idempotent(dedup_pm, tmp_path, table, keys, policy):
    params = {**keys, **policy}
    once = run_step("dedup_exact", table, params, pm=dedup_pm, workdir=tmp_path)
    twice = run_step("dedup_exact", once.kept, params, pm=dedup_pm, workdir=tmp_path)
    assert uids(twice.kept) == uids(once.kept)
    assert twice.dropped.height == 0


def test_text_key_ignores_case_punctuation_spacing_and_compatibility_forms():
    assert normalized(["A Red  Circle!", "a red circle", " a, red... circle ", "ａ ｒｅｄ circle", "ﬁsh", "fish"]) == \
        ["a red circle"] * 4 + ["fish", "fish"]
    assert normalized(["", "  !!  ", None, "__"]) == [None, None, None, None]


def test_reasons_say_which_key_matched(dedup_pm, tmp_path):
    table = pl.DataFrame({
        "uid": ["u0", "u1", "u2", "u3"],
        "alt_text": ["a cat", "A cat!", "a dog", "something"],
        "sha256": ["h0", "h1", "h0", None],
    })
    result = run_step("dedup_exact", table, {"by": ["image", "text"]}, pm=dedup_pm, workdir=tmp_path)
    assert uids(result.kept) == ["u0", "u3"]
    assert dict(result.dropped.select("uid", DROP_REASON).iter_rows()) == {
        "u1": "dedup_exact: text", "u2": "dedup_exact: image"}
    assert result.duplicate_of == {"u1": "u0", "u2": "u0"}
    assert result.kept["dup_group"].to_list() == [0, None]
    assert result.summary == {"groups": 1, "dropped": 2}


def test_params_are_checked():
    with pytest.raises(ValidationError, match="at most once"):
        DedupExactParams(by=["image", "image"])
    with pytest.raises(ValidationError):
        DedupExactParams(by=[])
    with pytest.raises(ValidationError, match="needs 'order_by'"):
        DedupExactParams(keep="max")
