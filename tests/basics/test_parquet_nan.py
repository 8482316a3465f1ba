"""NaN in Parquet float columns is read as stored by every DuckDB query of curate's.

Parquet leaves NaN out of a float column's min/max statistics and DuckDB believed them: a user's
``sql`` step over a stored table answered ``isnan(s)`` false on NaN rows, ``s >= 0.95`` skipped a
row group whose numbers were all below 0.95 but which held a NaN (DuckDB orders NaN largest), and
the run's views said the same. ``curate.parquet_nan``: every ``read_parquet`` says
``can_have_nan = true``."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.duck import connect, create_input_view
from curate.keptref import KeptReference
from curate.step import TableInput
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

NAN = float("nan")
TABLE = pl.DataFrame({"url": [f"http://x/{i}.jpg" for i in range(6)], "alt_text": list("abcdef"),
                      "s": [0.1, NAN, 0.9, 0.5, NAN, 0.2]})


def _run(write_spec, curate_main, steps, **run):  # noqa: F811
    write_spec({"name": "nan", "source": {"path": "data.parquet"}, "steps": steps,
                "outputs": [{"format": "parquet", "path": "out.parquet"}],
                "run": {"dir": "run", "report": False, **run}}, table=TABLE)
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 0, result


def test_a_table_sql_step_sees_nan_where_the_source_has_it(write_spec, curate_main, workdir):  # noqa: F811
    query = ("SELECT *, isnan(s) AS was_nan, s >= 0.95 AS high, NULLIF(s, 'nan'::DOUBLE) AS s_or_null "
             "FROM input")
    _run(write_spec, curate_main, [{"step": "sql", "params": {"query": query}}])
    out = pl.read_parquet(workdir / "run" / "out.parquet")
    assert out["was_nan"].to_list() == [False, True, False, False, True, False]  # was all False
    assert out["high"].to_list() == [False, True, False, False, True, False]  # NaN is DuckDB's largest
    assert out["s_or_null"].null_count() == 2


def test_stored_shards_and_the_runs_views_keep_nan(write_spec, curate_main, workdir):  # noqa: F811
    """The second query reads the first one's stored kept rows; the views read every store."""
    steps = [{"step": "sql", "name": "first", "params": {"query": "SELECT * FROM input WHERE url <> 'http://x/5.jpg'"}},
             {"step": "sql", "name": "no_nan", "params": {"query": "SELECT * FROM input WHERE NOT isnan(s)"}}]
    _run(write_spec, curate_main, steps, fuse=False)
    out = pl.read_parquet(workdir / "run" / "out.parquet")
    assert sorted(out["s"].to_list()) == [0.1, 0.5, 0.9]
    con = duckdb.connect(str(workdir / "run" / "curate.duckdb"), read_only=True)
    try:
        for view, nans in [("00_source", 2), ("01_first", 2), ("02_no_nan", 0), ("02_no_nan_dropped", 2)]:
            assert con.sql(f'SELECT count(*) FROM "{view}" WHERE isnan(s)').fetchall() == [(nans,)], view
    finally:
        con.close()


floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.just(NAN), st.none())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(floats, min_size=1, max_size=40), group=st.integers(1, 8),
       threshold=st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_every_relation_reads_nan_as_polars_does(tmp_path_factory, values, group, threshold):
    """isnan and a bound on the number agree with Polars (NaN counted largest, as DuckDB orders it)
    in every relation curate builds over Parquet, whatever the row groups' statistics say."""
    folder = tmp_path_factory.mktemp("nan")
    path = folder / "part.parquet"
    table = pl.DataFrame({"s": values}, schema={"s": pl.Float64})
    table.write_parquet(path, row_group_size=group)
    expected_nan = table["s"].is_nan().to_list()
    expected_high = [None if v is None else (math.isnan(v) or v >= threshold) for v in table["s"].to_list()]
    con = connect()
    try:
        create_input_view(con, TableInput([path], {"s": pl.Float64}))
        relations = {
            "TableInput.duckdb_relation_sql": (TableInput([path], {"s": pl.Float64}).duckdb_relation_sql(),
                                               "file_row_number"),
            "create_input_view": ("input", "_row"),
            "KeptReference.relation": (KeptReference((Path(path).as_posix(),), (("s", "s"),), True,
                                                     ("uid", "s")).relation(), "_row"),
        }
        for name, (relation, order) in relations.items():
            got = con.sql(f"SELECT isnan(s), s >= {threshold!r}::DOUBLE FROM {relation} ORDER BY {order}").fetchall()
            assert [row[0] for row in got] == expected_nan, name
            assert [row[1] for row in got] == expected_high, name
            where = con.sql(f"SELECT count(*) FROM {relation} WHERE s >= {threshold!r}::DOUBLE").fetchall()[0]
            assert where == (sum(1 for v in expected_high if v),), name
    finally:
        con.close()
