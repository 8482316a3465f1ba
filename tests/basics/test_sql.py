from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.errors import SpecError
from curate.testing import run_step
from curate.testing import strategies as cst
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)
from tests.invariants import assert_nothing_lost, uids

SCORED = cst.tables(max_rows=30, extra_columns={"score": cst.scores()}, extra_dtypes={"score": pl.Float64})

ROW_LOCAL = [
    "SELECT * FROM input WHERE score > 0.2",
    "SELECT uid, upper(alt_text) AS alt_text, score FROM input",
    "SELECT *, length(alt_text) AS n FROM input WHERE alt_text IS NOT NULL",
    "SELECT uid, url FROM input WHERE url LIKE 'https%';",
]


@settings(max_examples=15)
@given(table=SCORED, query=st.sampled_from(ROW_LOCAL), shard_size=st.sampled_from([8, 1000]))
def test_per_shard_and_whole_table_agree_on_row_local_queries(pm, tmp_path, table, query, shard_size):
    per_shard = run_step("sql", table, {"query": query, "per_shard": True}, pm=pm, shard_size=shard_size,
                         workdir=tmp_path)
    whole = run_step("sql", table, {"query": query}, pm=pm, shard_size=shard_size, workdir=tmp_path)
    assert per_shard.kept.equals(whole.kept)
    assert per_shard.schema == whole.schema
    assert sorted(uids(per_shard.dropped)) == sorted(uids(whole.dropped))
    for result in (per_shard, whole):
        assert_nothing_lost(table, result)
        assert set(result.drop_reasons) <= {"sql"}


@settings(max_examples=15)
@given(table=SCORED, per_shard=st.booleans())
def test_rows_the_query_leaves_out_are_recorded_with_the_reason(pm, tmp_path, table, per_shard):
    query = "SELECT * FROM input WHERE alt_text IS NOT NULL AND length(alt_text) > 3"
    result = run_step("sql", table, {"query": query, "per_shard": per_shard, "drop_reason": "short_or_null"},
                      pm=pm, shard_size=7, workdir=tmp_path)
    assert_nothing_lost(table, result)
    left_out = table.filter(~(pl.col("alt_text").str.len_chars() > 3).fill_null(False))
    assert uids(result.dropped) == uids(left_out)
    assert set(result.drop_reasons) <= {"short_or_null"}
    # The dropped table keeps the input columns, so a drop can be inspected.
    if result.dropped.height:
        assert set(table.columns) <= set(result.dropped.columns)


def test_a_table_wide_query_sees_every_row(pm):
    table = pl.DataFrame({"uid": list("abcdef"), "url": ["u"] * 6, "alt_text": ["x", "y", "x", "z", "y", "x"]})
    query = """
        SELECT *, count(*) OVER (PARTITION BY alt_text) AS copies FROM input
        QUALIFY row_number() OVER (PARTITION BY alt_text ORDER BY uid) = 1 ORDER BY uid
    """
    result = run_step("sql", table, {"query": query}, pm=pm, shard_size=2)
    assert uids(result.kept) == ["a", "b", "d"]
    assert result.kept["copies"].to_list() == [3, 2, 1]
    assert sorted(uids(result.dropped)) == ["c", "e", "f"]


def test_per_shard_dropped_rows_keep_the_input_order_of_a_frame_of_many_chunks(pm, tmp_path):
    """A fused group hands a shard over in memory, in several chunks; DuckDB then scans it on
    several threads and its anti-join (rows the query left out) returned them in a different
    order from call to call, so a fused run's dropped shard differed in bytes from the step's
    alone (a flake of test_fusion_heads). Dropped rows now come in the input's order, whatever
    the chunks and DuckDB's threads."""
    from curate.duck import shard_connection
    from curate.step import StepContext
    from curate.testing.runner import make_step

    parts = [pl.DataFrame({"uid": [f"{c}-{i}" for i in range(50)], "url": ["u" * (i * 7 % 40) for i in range(50)],
                           "_row": list(range(50))})  # a column named like the order column
             for c in range(8)]
    chunked = pl.concat(parts, rechunk=False)
    assert chunked.n_chunks() == 8
    step = make_step("sql", {"query": "SELECT * FROM input WHERE length(url) > 30", "per_shard": True}, pm=pm)
    ctx = StepContext(run_dir=tmp_path, label="sql", seed=0, artifacts=tmp_path / "artifacts", shard=0)
    expected = step.process_shard(chunked.rechunk(), ctx)
    left_out = chunked.filter(pl.col("url").str.len_chars() <= 30)
    assert expected.filter(pl.col("_drop_reason").is_not_null()).drop("_drop_reason").equals(left_out)
    con = shard_connection()
    con.execute("SET threads = 4")  # several scanning threads, as on a machine of many cores
    try:
        for _ in range(30):
            assert step.process_shard(chunked, ctx).equals(expected)
    finally:
        con.execute("RESET threads")


@pytest.mark.parametrize("query, message", [
    ("SELECT url FROM input", "no 'uid' column"),
    ("SELECT uid, alt_txt FROM input", "alt_txt"),
    ("SELEC uid FROM input", "does not run"),
])
def test_queries_are_checked_at_plan_time(pm, query, message):
    table = pl.DataFrame({"uid": ["a"], "url": ["u"], "alt_text": ["t"]})
    with pytest.raises(SpecError, match=message):
        run_step("sql", table, {"query": query}, pm=pm)


@pytest.mark.parametrize("untrusted", [False, True])
def test_sql_mistakes_are_said_even_when_the_source_cannot_be_read(curate_main, workdir, untrusted):
    """"Every problem at once": a missing source file, or one an untrusted spec may not read, left
    the steps unchecked (no schema to bind to), hiding a second statement in a query."""
    (workdir / "sub").mkdir()
    (workdir / "sub" / "spec.yaml").write_text(
        "source: {format: jsonl, path: " + ("../data.jsonl" if untrusted else "missing.jsonl") + "}\n"
        "steps:\n  - {step: sql, params: {query: 'SELECT * FROM input; SELECT 1'}}\n"
        "  - {step: filter, params: {where: 'true; DROP TABLE x'}}\n")
    (workdir / "data.jsonl").write_text('{"url": "http://a/1.jpg", "alt_text": "x"}\n')
    result = curate_main("validate", "sub/spec.yaml", *(["--untrusted"] if untrusted else []))
    assert result.code == 2, result
    assert "3 problems" in result.stderr and "source" in result.stderr
    assert "steps[0].params: the query must be a single query, found 2 SQL statements" in result.stderr
    assert "steps[1].params: 'where' not a single SQL expression" in result.stderr


# Queries whose rows DuckDB hands back in a different order from run to run (four orders in four
# runs of 1M rows): curate puts them in the input's order, so `exact_dedup keep: first` or
# `sample count:` after them keep the same rows every run.
REORDERING = [
    "SELECT input.* FROM input JOIN (SELECT url, min(uid) AS m FROM input GROUP BY url) b ON input.uid = b.m",
    "SELECT * FROM input WHERE url IN (SELECT url FROM input WHERE score > 0.3)",
    "SELECT * FROM input QUALIFY row_number() OVER (PARTITION BY url ORDER BY uid) = 1",
    "SELECT * FROM input WHERE EXISTS (SELECT 1 FROM input i2 WHERE i2.url = input.url AND i2.uid <> input.uid)",
    "SELECT * FROM input WHERE score > 0.5 UNION ALL SELECT * FROM input WHERE score <= 0.5",
]


@pytest.mark.parametrize(("query", "order"), [
    ("SELECT * FROM input WHERE length(alt_text) > 3 LIMIT 5", "input"),
    ("FROM input", "input"),
    ("SELECT *, upper(alt_text) AS u FROM input", "input"),
    ("SELECT * FROM input ORDER BY score DESC, uid", "query"),
    ("SELECT DISTINCT * FROM input", "unordered"),
    ("SELECT * FROM input WHERE 1 = (SELECT 1)", "unordered"),
    ("WITH x AS (SELECT * FROM input) SELECT * FROM x", "unordered"),
    ("SELECT count(*) OVER () AS n, * FROM input", "unordered"),
    ("SELECT * FROM input USING SAMPLE 10%", "unordered"),
    *[(query, "unordered") for query in REORDERING],
])
def test_which_queries_keep_the_input_order(query, order):
    from curate.sqltree import query_order

    assert query_order(query) == order


def _positions(table: pl.DataFrame, kept: pl.DataFrame) -> list[int]:
    where = {uid: i for i, uid in enumerate(table["uid"].to_list())}
    return [where[uid] for uid in kept["uid"].to_list()]


@pytest.mark.parametrize("query", REORDERING)
def test_a_reordering_querys_rows_come_in_the_input_order(pm, tmp_path, query):
    rows = 200_000
    table = pl.DataFrame({"uid": [f"{i:016x}" for i in range(rows)],
                          "url": [f"http://x/{(i * 7919) % 50_000}.jpg" for i in range(rows)],
                          "alt_text": [f"t{i}" for i in range(rows)],
                          "score": [((i * 104729) % 1000) / 1000 for i in range(rows)]})
    result = run_step("sql", table, {"query": query}, pm=pm, shard_size=rows, workdir=tmp_path)
    positions = _positions(table, result.kept)
    assert result.kept.height > 0 and positions == sorted(positions)
    assert_nothing_lost(table, result)


def test_a_querys_own_order_by_is_kept(pm, tmp_path):
    table = pl.DataFrame({"uid": ["a", "b", "c", "d"], "url": ["u1", "u2", "u3", "u4"], "alt_text": list("wxyz"),
                          "score": [0.2, 0.9, 0.5, 0.1]})
    result = run_step("sql", table, {"query": "SELECT * FROM input ORDER BY score DESC, uid"}, pm=pm, workdir=tmp_path)
    assert result.kept["uid"].to_list() == ["b", "c", "a", "d"]


@settings(max_examples=20, deadline=None)
@given(table=SCORED, query=st.sampled_from(REORDERING), shard_size=st.sampled_from([4, 1000]))
def test_any_reordering_query_keeps_the_input_order(pm, tmp_path, table, query, shard_size):
    table = table.with_columns(pl.col("score").fill_null(0.0))
    result = run_step("sql", table, {"query": query}, pm=pm, shard_size=shard_size, workdir=tmp_path)
    positions = _positions(table, result.kept)
    assert positions == sorted(positions)
    assert_nothing_lost(table, result)


@pytest.mark.parametrize(("query", "said"), [
    ("SELECT * FROM input WHERE random() < 0.5", ["calls random()"]),
    ("SELECT *, now() AS t, current_date AS d, uuid() AS u FROM input",
     ["calls now()", "reads current_date", "calls uuid()"]),
    ("SELECT DISTINCT ON (url) * FROM input", ["keeps any row of each DISTINCT ON group"]),
    ("SELECT * FROM input USING SAMPLE 10%", ["samples without a seed"]),
    ("SELECT * FROM (SELECT * FROM input TABLESAMPLE 10%)", ["samples without a seed"]),
    ("SELECT * FROM input WHERE uid IN (SELECT any_value(uid) FROM input GROUP BY url)", ["takes any_value()"]),
    ("SELECT DISTINCT ON (url) * FROM input ORDER BY url, uid", []),
    ("SELECT * FROM input USING SAMPLE 10% (bernoulli, 42)", []),
    ("SELECT * FROM input WHERE uid IN (SELECT first(uid ORDER BY uid) FROM input GROUP BY url)", []),
    ("SELECT * FROM input QUALIFY row_number() OVER (PARTITION BY url ORDER BY uid) = 1", []),
    ("SELECT * FROM input QUALIFY row_number() OVER (PARTITION BY url ORDER BY score DESC, input.uid) = 1", []),
    ("SELECT * FROM input QUALIFY row_number() OVER (PARTITION BY url ORDER BY score DESC) = 1",
     ["row_number() OVER (…) whose ORDER BY does not end with uid"]),
    ("SELECT *, lead(score) OVER () AS next FROM input", ["lead() OVER (…) whose ORDER BY does not end with uid"]),
    ("SELECT *, rank() OVER (ORDER BY score) AS r, sum(score) OVER (PARTITION BY url) AS s FROM input", []),
    ("SELECT * FROM input WHERE length(alt_text) > 3", []),
])
def test_what_makes_a_query_unrepeatable(query, said):
    from curate.sqltree import unrepeatable

    found = unrepeatable(query)
    assert len(found) == len(said) and all(any(s in f for f in found) for s in said), found


def test_steps_warn_when_their_sql_is_unrepeatable(pm, tmp_path):
    from curate.sqltree import UnrepeatableWarning

    table = pl.DataFrame({"uid": ["a", "b"], "url": ["u", "u"], "alt_text": ["x", "y"]})
    with pytest.warns(UnrepeatableWarning, match="step 'sql': its query keeps any row of each DISTINCT ON group"):
        run_step("sql", table, {"query": "SELECT DISTINCT ON (url) * FROM input"}, pm=pm, workdir=tmp_path)
    with pytest.warns(UnrepeatableWarning, match=r"step 'filter': its 'where' calls random\(\)"):
        run_step("filter", table, {"where": "random() < 0.5"}, pm=pm, workdir=tmp_path)


@pytest.mark.parametrize(("query", "why"), [
    *[(query, None) for query in REORDERING],
    ("SELECT * FROM input LIMIT 3", "a LIMIT"),
    ("SELECT * FROM input ORDER BY uid", "an ORDER BY"),
    ("SELECT uid, count(*) OVER (PARTITION BY url) AS n FROM input", "a window function"),
])
def test_per_shard_refuses_a_query_that_is_not_row_local(pm, query, why):
    """Per shard, such a query saw one shard: its rows changed with the shard size."""
    table = pl.DataFrame({"uid": ["a"], "url": ["u"], "alt_text": ["t"], "score": [0.5]})
    with pytest.raises(SpecError, match="per_shard: true runs the query on each shard alone, but it has "
                                        + (why or "")):
        run_step("sql", table, {"query": query, "per_shard": True}, pm=pm)


def test_per_shard_takes_a_constant_subquery(pm):
    table = pl.DataFrame({"uid": ["a", "b"], "url": ["u", "v"], "alt_text": ["t", "w"]})
    result = run_step("sql", table, {"query": "SELECT * FROM input WHERE url = (SELECT 'u')", "per_shard": True}, pm=pm)
    assert result.kept["uid"].to_list() == ["a"]


def test_a_duration_passed_through_the_query_is_refused_with_how_to_select_it(pm):
    """DuckDB holds a Duration as an INTERVAL, which Polars' reader panicked on at validation (column-types probe)."""
    import datetime as dt

    table = pl.DataFrame({"uid": ["a"], "url": ["u"], "alt_text": ["t"], "took": [dt.timedelta(seconds=1)]})
    with pytest.raises(SpecError, match=r"its result column 'took' is an INTERVAL.*SELECT \* EXCLUDE \(\"took\"\)"):
        run_step("sql", table, {"query": "SELECT * FROM input"}, pm=pm)
    kept = run_step("sql", table, {"query": "SELECT * EXCLUDE (took) FROM input"}, pm=pm)
    assert kept.kept["uid"].to_list() == ["a"]
