from __future__ import annotations

import hashlib

import duckdb
import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from curate.hashing import uniform, uniform_sql

UIDS = st.lists(st.one_of(st.text(max_size=20), st.none()), min_size=1, max_size=30)


@given(uids=UIDS, seed=st.integers(-(2**40), 2**40), salt=st.text(max_size=8))
def test_python_and_sql_draw_the_same_number_in_0_1(uids, seed, salt):
    series = pl.Series("uid", uids, dtype=pl.Utf8)
    draws = uniform(series, seed, salt).to_list()
    frame = pl.DataFrame({"uid": series})
    con = duckdb.connect()
    try:
        con.register("frame", frame)
        sql = con.sql(f"SELECT {uniform_sql('uid', seed, salt)} AS u FROM frame").pl()["u"].to_list()
    finally:
        con.close()
    assert draws == sql
    assert all(0.0 <= d < 1.0 for d in draws)
    assert uniform(series, seed, salt).to_list() == draws  # deterministic


def test_draws_are_uniform_and_depend_on_seed_and_salt():
    uids = pl.Series([f"{i:016x}" for i in range(20_000)])
    draws = uniform(uids, 0)
    assert abs(draws.mean() - 0.5) < 0.01
    histogram = (draws * 10).floor().value_counts()["count"]
    assert histogram.min() > 1800 and histogram.max() < 2200
    assert (uniform(uids, 1) != draws).mean() > 0.99
    assert (uniform(uids, 0, salt="mix") != draws).mean() > 0.99


@given(uids=UIDS, seed=st.integers(-(2**40), 2**40), salt=st.text(max_size=8))
def test_the_draw_is_md5s_first_8_bytes_as_duckdbs_md5_number_upper_gives_them(uids, seed, salt):
    """The definition (so runs stored before keep their samples): the digest's first 8 bytes,
    little-endian, over 2**64, the number DuckDB's md5_number_upper macro gives."""
    series = pl.Series("uid", uids, dtype=pl.Utf8)
    expected = [int.from_bytes(hashlib.md5(f"{seed}:{salt}:{u or ''}".encode()).digest()[:8], "little") / 2**64
                for u in uids]
    assert uniform(series, seed, salt).to_list() == expected
    prefix = f"{seed}:{salt}:".replace("'", "''")
    con = duckdb.connect()
    try:
        con.register("frame", pl.DataFrame({"uid": series}))
        upper = con.sql(f"SELECT md5_number_upper('{prefix}' || coalesce(uid, '')) :: DOUBLE / 2**64 AS u "
                        "FROM frame").pl()["u"].to_list()
    finally:
        con.close()
    assert upper == expected
