"""MetaCLIP curation (metadata_match on Ray actors, metadata_balance in the driver) keeps the same
rows and writes the same entry counts on the Ray executor as on the local one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from curate.testing import run_spec
from curate.testing.runner import read_step_output

pytest.importorskip("ray")
pytest.importorskip("ahocorasick")

pytestmark = pytest.mark.slow  # runs specs on a real Ray cluster


def world_table(directory: Path) -> Path:
    """A long-tailed world's alt-texts as one Parquet file that both runs read (a world source
    serves on a fresh port per run, so its urls, and the uids made from them, would differ)."""
    from curate_world.generate import generate_world

    generate_world(directory / "world", n=600, seed=3, concept_skew=1.5)
    table = pl.read_parquet(directory / "world" / "world.parquet")
    path = directory / "world.parquet"
    table.select(pl.format("https://world.test/{}", "url_path").alias("url"), "alt_text").write_parquet(path)
    return path


def metadata_spec(executor: dict[str, Any], data: Path, t: Any) -> dict[str, Any]:
    return {
        "name": "metadata",
        "source": {"format": "parquet", "path": str(data)},
        "steps": [{"step": "metadata_match", "params": {"ignore_case": True}},
                  {"step": "metadata_balance", "params": {"t": t}}],
        "run": {"dir": "run", "shard_size": 37, "seed": 5, "report": False, "executor": executor},
    }


def kept_and_counts(manifest: dict[str, Any]) -> tuple[list[str], pl.DataFrame]:
    assert manifest["status"] == "complete"
    balance = manifest["steps"][-1]
    kept = sorted(read_step_output(manifest, balance["label"])["uid"].to_list())
    counts = pl.read_parquet(Path(balance["path"]) / balance["summary"]["counts_file"]).sort("entry_id")
    return kept, counts


def test_metadata_match_and_balance_keep_the_same_rows_on_ray(ray_cluster, tmp_path):
    world = world_table(tmp_path)
    local = kept_and_counts(run_spec(metadata_spec({"name": "local"}, world, 25), tmp_path / "local"))
    on_ray = run_spec(metadata_spec({"name": "ray", "params": {"actors": 2}}, world, 25), tmp_path / "ray")
    assert on_ray["executor"] == "ray"
    kept, counts = kept_and_counts(on_ray)
    assert kept == local[0]
    assert counts.equals(local[1])
    assert 0 < len(kept) < 600 and (counts["count"] > 25).any(), "some entries are sub-sampled"


def test_a_per_language_t_keeps_the_same_rows_on_ray(ray_cluster, tmp_path):
    """Every concept name listed for two languages; rows alternate between them; German over a low
    t, English under a high one."""
    from curate_world.vocab import concept_names

    data = world_table(tmp_path)
    table = pl.read_parquet(data)
    table.with_columns(pl.when(pl.int_range(pl.len()) % 3 == 0).then(pl.lit("de")).otherwise(pl.lit("en"))
                       .alias("lang")).write_parquet(data)
    names = list(concept_names())
    entries = tmp_path / "entries.parquet"
    pl.DataFrame({"entry": names * 2, "language": ["en"] * len(names) + ["de"] * len(names)}).write_parquet(entries)
    results = []
    for name, executor in [("local", {"name": "local"}), ("ray", {"name": "ray", "params": {"actors": 2}})]:
        spec = metadata_spec(executor, data, {"en": 1000, "de": 10})
        spec["steps"][0]["params"].update(entries=str(entries), language="lang")
        results.append(kept_and_counts(run_spec(spec, tmp_path / name)))
    (kept, counts), (kept_ray, counts_ray) = results
    assert kept == kept_ray and counts.equals(counts_ray)
    assert (counts.filter(pl.col("language") == "en").select((pl.col("kept") == pl.col("count")).all()).item())
    assert (counts.filter(pl.col("language") == "de")["kept"] < counts.filter(pl.col("language") == "de")["count"]).any()
