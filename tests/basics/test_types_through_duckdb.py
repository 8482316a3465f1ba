"""Columns that pass through a step that streams whole rows through DuckDB keep their types.

DuckDB reads Parquet timestamps as microseconds in UTC and has no fixed-size arrays: `sample` by
count and a table `sql` gave a millisecond timestamp, a Paris time zone and an embedding array
back in DuckDB's types, and the engine stopped the run blaming the plugin (found by the
column-types probe). Now the engine casts them back (`curate.schema.restorable`) and `sql` plans a
column it passes on with its input type."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from curate.testing import run_spec
from curate.testing.runner import read_step_output

ROWS = 40
TABLE = pl.DataFrame({
    "url": [f"http://x/{i}.jpg" for i in range(ROWS)],
    "alt_text": [f"text {i % 7}" for i in range(ROWS)],
    "ts_ms": [datetime(2024, 1, 1, 0, 0, i % 60, 123000) for i in range(ROWS)],
    "emb": [[i, i + 1, i + 2] for i in range(ROWS)],
}).with_columns(
    pl.col("ts_ms").cast(pl.Datetime("ms")),
    pl.col("ts_ms").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").dt.convert_time_zone("Europe/Paris")
    .alias("ts_paris"),
    pl.col("emb").cast(pl.Array(pl.Int32, 3)),
)


@pytest.mark.parametrize("step", [
    {"step": "sample", "params": {"count": 25}},
    {"step": "sample", "params": {"count": 3, "by": "alt_text"}},
    {"step": "sql", "params": {"query": "SELECT * FROM input WHERE url NOT LIKE '%7.jpg'"}},
    {"step": "sql", "params": {"query": "SELECT * FROM input WHERE url NOT LIKE '%7.jpg'", "per_shard": True}},
    {"step": "sql", "params": {"query": "SELECT input.* FROM input JOIN (SELECT min(uid) AS m FROM input "
                                        "GROUP BY alt_text) b ON input.uid = b.m"}},
])
def test_columns_keep_their_types_and_values_through_duckdb(pm, workdir, step):
    manifest = run_spec({"source": {"path": "d.parquet"}, "steps": [step], "run": {"shard_size": 16}}, workdir,
                        tables={"d.parquet": TABLE}, pm=pm)
    out = read_step_output(manifest, step["step"])
    assert 0 < out.height < ROWS
    assert {name: out.schema[name] for name in TABLE.columns} == dict(TABLE.schema)
    assert out.drop("uid").sort("url").equals(TABLE.filter(pl.col("url").is_in(out["url"].to_list())).sort("url"))
    # the dropped rows, the lineage's, keep them too
    record = next(r for r in manifest["steps"] if r["label"] == step["step"])
    dropped = pl.concat([pl.read_parquet(f) for f in sorted((Path(record["path"]) / "dropped").glob("*.parquet"))])
    assert dropped.height == ROWS - out.height
    assert {name: dropped.schema[name] for name in TABLE.columns} == dict(TABLE.schema)
    assert dropped.select(TABLE.columns).sort("url").equals(
        TABLE.filter(~pl.col("url").is_in(out["url"].to_list())).sort("url"))
