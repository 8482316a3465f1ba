"""Run curate steps on an in-memory table through the engine, the path ``curate run`` takes
(plan checks, shards, manifest), not through ``curate.testing`` (which needs hypothesis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import yaml


def run_steps(table: pl.DataFrame, steps: list[dict[str, Any]], workdir: Path, *, seed: int = 0,
              name: str = "experiment") -> pl.DataFrame:
    """Write ``table`` to ``workdir/input.parquet``, run ``steps`` (spec entries, e.g.
    ``{"step": "mix", "params": {...}}``) on it with the engine and return the last step's rows."""
    from curate.engine import Engine
    from curate.plan import make_plan
    from curate.plugins import get_plugin_manager
    from curate.shards import iter_shard_files
    from curate.spec import load_spec_text

    workdir.mkdir(parents=True, exist_ok=True)
    # A source needs ``url`` (and derives ``uid`` unless the table has one, as the pool does): a
    # table of local images has none, so it gets an empty one for the run, dropped afterwards.
    added = "url" not in table.columns
    (table.with_columns(pl.lit(None, pl.Utf8).alias("url")) if added else table).write_parquet(
        workdir / "input.parquet")
    spec = {"name": name, "source": {"format": "parquet", "path": "input.parquet"}, "steps": steps,
            "run": {"dir": "run", "seed": seed}}
    spec_path = workdir / "spec.yaml"
    text = yaml.safe_dump(spec, sort_keys=False)
    spec_path.write_text(text)
    manager = get_plugin_manager()
    plan = make_plan(load_spec_text(text, spec_path), manager, workdir / "run")
    manifest = Engine(plan, manager).run()
    files = iter_shard_files(Path(manifest["steps"][-1]["path"]))
    result = pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")
    if added:
        result = result.drop("url")
    # the input's column order (the source puts url and alt_text first), then the steps' new columns
    order = [c for c in table.columns if c in result.columns]
    return result.select(order + [c for c in result.columns if c not in order])
