"""A filter decides each row on its own: a ``where`` holding a window function, an aggregate or a
subquery is refused at validation (it kept the wrong rows: DuckDB hands a window's verdicts back in
its own order, and shard by shard a window or aggregate sees one shard, not the table)."""

from __future__ import annotations

import polars as pl
import pytest

from curate.errors import SpecError
from curate.testing import run_step

TABLE = pl.DataFrame({"uid": [f"{i:04d}" for i in range(50)], "url": ["u"] * 50,
                      "alt_text": [f"text {i}" for i in range(50)], "v": [float((i * 37) % 50) for i in range(50)]})


@pytest.mark.parametrize(("where", "said"), [
    ("row_number() over (order by v desc) <= 10", "a window function (row_number)"),
    ("v >= quantile_cont(v, 0.9) over ()", "a window function (quantile_cont)"),
    ("count(*) > 1", "an aggregate (count(*))"),
    ("v > avg(v)", "an aggregate (avg)"),
    ("v > (select avg(v) from input)", "a subquery over the table"),
    ("uid in (select uid from input limit 3)", "a subquery over the table"),
])
def test_a_where_that_is_not_row_local_is_refused(where, said):
    with pytest.raises(SpecError) as raised:
        run_step("filter", TABLE, {"where": where})
    assert f"'where' holds {said}: a filter decides each row on its own" in str(raised.value)


@pytest.mark.parametrize("where", ["v > 10", "length(alt_text) > 6 and v is not null", "list_sum([v, 1]) > 3",
                                   "v < (select max(range) from range(30))",  # a constant: the same for every row
                                   "greatest(v, 3) > 5", "list_aggregate([v, 2], 'max') > 4", "alt_text ~ 'text [12].*'"])
def test_row_local_expressions_still_run_and_keep_what_a_where_clause_keeps(where):
    result = run_step("filter", TABLE, {"where": where}, shard_size=7)
    import duckdb

    con = duckdb.connect()
    con.register("rows", TABLE)
    expected = con.sql(f"SELECT uid FROM rows WHERE {where} ORDER BY uid").pl()["uid"].to_list()
    assert sorted(result.kept["uid"].to_list()) == expected
