"""Stable per-row random numbers: a row's draw depends only on its uid and the seed.

So a seeded sample or mix picks the same rows whatever the shard layout, executor or order,
and across polars versions (polars' own ``hash`` is not stable between releases).
"""

from __future__ import annotations

import polars as pl

from curate.duck import registered, shard_connection

_TWO_64 = "18446744073709551616.0"


def uniform(uids: pl.Series, seed: int, salt: str = "") -> pl.Series:
    """A float in [0, 1) per uid, uniform, deterministic in (uid, seed, salt)."""
    frame = pl.DataFrame({"uid": uids.cast(pl.Utf8)})
    prefix = f"{seed}:{salt}:".replace("'", "''")
    con = shard_connection()
    with registered(con, "_uniform_uids", frame):
        result = con.sql(
            f"SELECT md5_number_upper('{prefix}' || coalesce(uid, '')) :: DOUBLE / {_TWO_64} AS u FROM _uniform_uids"
        ).pl()
    return result["u"]


def uniform_sql(column: str, seed: int, salt: str = "") -> str:
    """The same draw as :func:`uniform`, as a DuckDB expression over ``column``."""
    prefix = f"{seed}:{salt}:".replace("'", "''")
    return f"(md5_number_upper('{prefix}' || coalesce(CAST({column} AS VARCHAR), '')) :: DOUBLE / {_TWO_64})"
