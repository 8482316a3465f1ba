"""A Parquet file of very many tiny row groups is staged, with a warning that names it.

DuckDB spends a fixed cost on every row group of every query and hands each one over as a batch
of its own: a file of 100,000 one-row groups took 56 s and 2.2 GB through a source and a filter
read in place (curate.ingest.small_row_groups)."""

from __future__ import annotations

import logging

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

import curate.ingest
from curate.ingest import small_row_groups
from curate.testing import run_spec
from curate.testing.runner import read_step_output


def test_a_file_of_tiny_row_groups_is_staged_and_named(pm, workdir, monkeypatch, caplog):
    monkeypatch.setattr(curate.ingest, "SMALL_ROW_GROUPS", 50)
    table = pa.table({"url": [f"http://e/{i}" for i in range(60)], "alt_text": [f"t{i}" for i in range(60)]})
    pq.write_table(table, workdir / "tiny.parquet", row_group_size=1)
    pq.write_table(table, workdir / "plain.parquet")
    assert small_row_groups(workdir / "tiny.parquet") and not small_row_groups(workdir / "plain.parquet")
    with caplog.at_level(logging.WARNING, logger="curate.ingest"):
        manifest = run_spec({"source": {"path": "tiny.parquet"}, "steps": [{"step": "filter", "params":
                                                                          {"where": "true"}}]}, workdir, pm=pm)
    said = [r.getMessage() for r in caplog.records if "row groups" in r.getMessage()]
    assert len(said) == 1 and "tiny.parquet holds 60 rows in 60 row groups" in said[0]
    assert "rewrite it with larger row groups" in said[0]
    out = read_step_output(manifest, "filter")
    assert out.drop("uid").equals(pl.read_parquet(workdir / "tiny.parquet"))
