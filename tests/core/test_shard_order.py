"""Shard files are read in their index order past shard 99,999.

Shard names carry the index with at least five digits, so ``shard-100000`` is longer than
``shard-99999`` and sorted as text came before ``shard-10001``: past 10^5 shards (10^10 rows at
the default shard size, 10^8 at ``shard_size: 1000``) rows were read out of order, and
``keep: first`` or a sample by count then chose other rows (found by the reproducibility probe)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from curate.shards import in_shard_order
from curate.step import StepContext, TableInput
from curate.testing.runner import make_step


@given(st.sets(st.integers(0, 2_000_000), min_size=1, max_size=30))
def test_shard_files_sort_by_their_index(indexes):
    names = [Path(f"/s/data/shard-{i:05d}.parquet") for i in indexes]
    assert [int(p.stem.split("-")[1]) for p in in_shard_order(reversed(names))] == sorted(indexes)


def test_table_steps_read_shard_100000_after_shard_99999(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for index in (99_999, 100_000, 100_001):
        pl.DataFrame({"uid": [f"{index}-{r}" for r in range(3)], "url": ["u"] * 3, "alt_text": ["t"] * 3}) \
            .write_parquet(data / f"shard-{index:05d}.parquet")
    files = in_shard_order(data.glob("shard-*.parquet"))
    assert [f.name for f in files] == ["shard-99999.parquet", "shard-100000.parquet", "shard-100001.parquet"]
    table = TableInput(files, {"uid": pl.Utf8, "url": pl.Utf8, "alt_text": pl.Utf8})
    for name, params in (("exact_dedup", {"columns": ["url"], "keep": "first"}), ("sample", {"count": 9}),
                         ("sql", {"query": "SELECT * FROM input WHERE uid NOT LIKE '100000-%'"})):
        step = make_step(name, params)
        ctx = StepContext(run_dir=tmp_path / name, label=name, seed=0, artifacts=tmp_path / name / "artifacts")
        out = pl.concat(list(step.process_table(table, ctx)), how="diagonal_relaxed")
        kept = out.filter(pl.col("_drop_reason").is_null()) if "_drop_reason" in out.columns else out
        assert kept["uid"][0] == "99999-0", name
        if name == "exact_dedup":
            assert kept["uid"].to_list() == ["99999-0"]
        else:
            order = [int(u.split("-")[0]) * 10 + int(u.split("-")[1]) for u in kept["uid"]]
            assert order == sorted(order), name
