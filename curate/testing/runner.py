"""Run one step on a table, or a whole spec, through the engine's real code paths."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from curate.errors import SpecError
from curate.plan import check_columns
from curate.plugins import PluginManager, get_plugin_manager
from curate.schema import DROP_REASON, DUPLICATE_OF
from curate.shards import (
    KEPT_REFERENCE,
    ShardTask,
    ShardWriter,
    check_nothing_lost,
    iter_dropped_files,
    iter_shard_files,
    run_shard_task,
    table_frames,
    uids_of,
)
from curate.step import Step, StepContext, TableInput


@dataclass
class StepResult:
    kept: pl.DataFrame
    dropped: pl.DataFrame
    schema: dict[str, pl.DataType] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def drop_reasons(self) -> dict[str, int]:
        if self.dropped.height == 0 or DROP_REASON not in self.dropped.columns:
            return {}
        return dict(self.dropped.group_by(DROP_REASON).len().iter_rows())

    @property
    def duplicate_of(self) -> dict[str, str]:
        if DUPLICATE_OF not in self.dropped.columns:
            return {}
        return dict(self.dropped.select("uid", DUPLICATE_OF).drop_nulls().iter_rows())


def make_step(step: str | Step | type[Step], params: dict[str, Any] | None = None,
              pm: PluginManager | None = None, label: str | None = None) -> Step:
    if isinstance(step, Step):
        return step
    if isinstance(step, str):
        cls = (pm or get_plugin_manager()).steps.get(step)
        if cls is None:
            raise SpecError(f"unknown step '{step}'")
    else:
        cls = step
    return cls(cls.Params.model_validate(params or {}), label=label)


def run_step(
    step: str | Step | type[Step],
    table: pl.DataFrame,
    params: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    shard_size: int = 1000,
    workdir: Path | None = None,
    pm: PluginManager | None = None,
    upstream: dict[str, Path] | None = None,
) -> StepResult:
    """Run ``step`` on ``table`` the way the engine would: plan check, shards, contract check.

    ``upstream`` (label → step store directory) stands in for the steps before this one, for
    steps that read their artifacts (embeddings under ``<dir>/artifacts/embeddings``)."""
    instance = make_step(step, params, pm)
    schema = dict(table.schema)
    problems = [m for m, _ in check_columns(instance, schema)] + instance.plan_check(schema)
    if problems:
        raise SpecError("; ".join(problems))
    expected = instance.output_schema(schema)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        inputs = root / "input"
        writer = ShardWriter(None, inputs, shard_size, None)
        writer.add(table)
        writer.close(empty_schema=schema)
        files = iter_shard_files(inputs)
        out = root / "output"
        extras = {"upstream": {label: str(path) for label, path in (upstream or {}).items()}}
        ctx = StepContext(run_dir=root, label=instance.label, seed=seed, artifacts=out / "artifacts", extras=extras)
        ctx.artifacts.mkdir(parents=True)
        instance.setup(ctx)
        if instance.scope == "table":
            table_writer = ShardWriter(instance, out, shard_size, expected)
            for frame in table_frames(instance, instance.process_table(TableInput(files, schema), ctx)):
                table_writer.add(frame)
            table_writer.close(empty_schema=expected)
            check_nothing_lost(instance, None, uids_of(files),
                               uids_of([*iter_shard_files(out), *iter_dropped_files(out)]))
        else:
            for index, path in enumerate(files):
                run_shard_task(instance, ShardTask(index, path, out), ctx, expected)
        summary = instance.summary(ctx)  # after every shard, as the engine asks it
        kept = pl.concat([pl.read_parquet(p) for p in iter_shard_files(out)], how="vertical_relaxed")
        dropped_frames = [pl.read_parquet(p) for p in iter_dropped_files(out)]
        dropped = pl.concat(dropped_frames, how="diagonal_relaxed") if dropped_frames else pl.DataFrame()
    return StepResult(kept=kept, dropped=dropped, schema=expected, summary=summary)


def run_spec(
    spec: str | dict[str, Any],
    workdir: Path,
    *,
    tables: dict[str, pl.DataFrame] | None = None,
    pm: PluginManager | None = None,
    **run_options: Any,
) -> dict[str, Any]:
    """Write ``tables`` as Parquet files in ``workdir``, run the spec there, return the manifest."""
    from curate.engine import Engine
    from curate.plan import make_plan
    from curate.spec import load_spec_text

    workdir.mkdir(parents=True, exist_ok=True)
    for name, frame in (tables or {}).items():
        frame.write_parquet(workdir / name)
    text = spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False)
    spec_path = workdir / "spec.yaml"
    spec_path.write_text(text)
    loaded = load_spec_text(text, spec_path)
    manager = pm or get_plugin_manager()
    run_dir = workdir / "run"
    plan = make_plan(loaded, manager, run_dir)
    return Engine(plan, manager).run(**run_options)


def read_step_output(manifest: dict[str, Any], label: str) -> pl.DataFrame:
    """The rows a step of a finished run kept, in order."""
    for record in manifest["steps"]:
        if record["label"] == label:
            if record.get("kept_rows_stored") is False:
                if (Path(record["path"]) / KEPT_REFERENCE).exists():  # a source read in place: exact
                    from curate.duck import connect
                    from curate.runstore import kept_relation

                    con = connect()
                    try:
                        return con.sql(f"SELECT * FROM {kept_relation(manifest, record)}").pl()
                    finally:
                        con.close()
                raise ValueError(f"step '{label}' ran fused with the steps after it ({', '.join(record['fused'])}): "
                                 "its kept rows were not stored; run the spec with run.fuse: false to keep them")
            files = iter_shard_files(Path(record["path"]))
            return pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")
    raise KeyError(label)
