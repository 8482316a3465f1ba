"""Fused shard steps: consecutive shard-scope steps run as one pass per shard.

A shard step used to write its kept rows and its dropped rows as Parquet, and the next step read
them back: for relational steps (filter, sql, select, normalize_text, sample) that write and read
was a quarter of curate's CPU. The plan groups consecutive steps that are ``thread_safe``, do not
use a model and whose kept rows no output reads (:func:`fusable`); the executor sees one step,
:class:`FusedSteps`, and each shard goes through every member in memory. On disk:

- every member's dropped rows, as before (``store/<fp>/dropped/shard-*.parquet``), so lineage,
  ``_duplicate_of``, the ``NN_label_dropped`` views and the report's dropped examples stay;
- only the group's last member's kept rows (``data/``) and its per-shard markers (``shards/``),
  each marker with every member's rows in, rows out and drop reasons for that shard;
- each member's ``_COMPLETE.json``, the members before the last with ``kept_rows_stored: false``
  (``runstore.cache_problem`` then checks their dropped rows only).

The group is one cache unit and one resume unit: it is reused when every member is complete, a
cut-off group keeps its finished shards (a shard is finished when its marker agrees with the last
member's kept rows and every member's dropped rows: each member's facts in it carry the
fingerprints of its own files), and ``curate run --from`` a member re-runs the whole group.
One exception: a head (:func:`fusable_head`) that stored its kept rows, having
run alone before (the last step of another experiment variant), is reused, and its followers read
those rows as a group headed by a shard step does. Outputs are byte-identical to running the
members one by one.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curate.diskspace import check_free
from curate.errors import CurateError, StepError, reported
from curate.runfiles import read_json
from curate.schema import Schema
from curate.step import Step, StepContext


def fusable_head(step: Step | None) -> bool:
    """A step that may head a fused group: the source (``None``) or a table step without a model.
    It runs whole, as ever, but its kept shards go straight into the fusable steps after it,
    in memory, instead of to its ``data/`` (which a group's head no longer has)."""
    return step is None or (step.scope == "table" and not step.uses_model)


def fusable(step: Step | None) -> bool:
    """A step that may share a pass per shard with its neighbours: shard scope, no state between
    shards (``thread_safe``) and no model (model steps keep their own cache and resume unit)."""
    return (step is not None and step.scope == "shard" and step.thread_safe and not step.uses_model)


@dataclass
class Member:
    step: Step
    expected: Schema  # the planned output schema of this member
    step_dir: Path  # its store directory (dropped rows, artifacts, marker)
    ctx: StepContext  # its own context (label, artifacts); the shard is set per task


class FusedSteps(Step):
    """The members of a fused group, seen by executors as one thread-safe shard step."""

    name = "fused"
    scope = "shard"
    thread_safe = True

    def __init__(self, members: list[Member]):
        super().__init__(label="+".join(m.step.label for m in members))
        self.members = members

    def setup(self, ctx: StepContext) -> None:
        for member in self.members:
            member.step.setup(member.ctx)

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        raise NotImplementedError("a fused group runs through run_fused_task, not process_shard")

    def dropped_path(self, member: Member, task: Any) -> Path:
        return member.step_dir / "dropped" / task.name


def finished_fused_shard(fused: FusedSteps, task: Any) -> tuple[Any, str | None]:
    """(the shard's stats, None) when its marker agrees with the last member's kept rows and
    every member's dropped rows (each file's fingerprint where the marker has them, and row
    counts from the footers), else (None, why not); (None, None) when there is no group marker
    (none at all, or one a lone step or another grouping wrote: no disagreement, just not this)."""
    from curate.shards import ShardStats, files_problem, parquet_rows

    if not task.marker.exists():
        return None, None
    try:
        stats = ShardStats.from_json(read_json(task.marker))
        if stats.members is None or len(stats.members) != len(fused.members):
            return None, None
        for member, facts in zip(fused.members, stats.members):
            path = fused.dropped_path(member, task)
            # A marker written before fingerprints is trusted on its row counts.
            paths = [path, task.output] if member is fused.members[-1] else [path]
            problem = files_problem(member.step_dir, facts["files"], paths) if "files" in facts else None
            if problem:
                return None, problem
            dropped, recorded = parquet_rows(path), sum(facts["dropped"].values())
            if dropped != recorded:
                return None, f"its marker says {recorded} dropped rows, {path} holds {dropped}"
        rows = parquet_rows(task.output)
        if rows != stats.rows_out:
            return None, f"its marker says {stats.rows_out} rows out, {task.output} holds {rows}"
    except Exception as exc:  # an unreadable marker or file: the shard is redone
        return None, f"its marker or files are unreadable ({type(exc).__name__}: {exc})"
    return stats, None


def run_fused_task(fused: FusedSteps, task: Any, ctx: StepContext, expected: Schema) -> Any:
    """One shard through every member: each member's dropped rows are written to its own store
    directory, the last member's kept rows to ``task.output``, then the marker. The checks are
    the ones a lone step gets (declared columns, nothing lost), per member."""
    done, redone = finished_fused_shard(fused, task)
    if done is not None:
        return done
    stats = run_fused_frame(fused, task, pl.read_parquet(task.input))
    stats.redone = redone
    return stats


def run_fused_frame(fused: FusedSteps, task: Any, table: pl.DataFrame) -> Any:
    """:func:`run_fused_task` on a shard already in memory (a group headed by a source or a
    table step hands each of its kept shards over without writing it)."""
    from curate.shards import (
        ShardStats,
        check_nothing_lost,
        check_output,
        drop_counts,
        relative,
        restored,
        split_dropped,
        step_frame,
        uids_of,
        write_json_atomic,
        write_shard,
    )

    check_free(task.output_dir, fused.members[0].ctx.min_free_disk,
               f"step '{fused.members[-1].step.label}' before storing shard {task.index}")
    started = time.perf_counter()
    rows_in = table.height
    members: list[dict[str, Any]] = []
    for member in fused.members:
        step = member.step
        member_started = time.perf_counter()
        member_ctx = dataclasses.replace(member.ctx, shard=task.index, progress=None)
        try:
            result = step.process_shard(table, member_ctx)
        except CurateError:
            raise
        except BaseException as exc:  # a plugin's bug: name the member step and shard, keep the cause
            if not reported(exc):
                raise
            raise StepError.from_exception(step.label, task.index, exc) from exc
        kept, dropped = split_dropped(step_frame(step, result, task.index))
        kept = check_output(step, kept, member.expected, task.index)
        check_nothing_lost(step, task.index, table.lazy(), uids_of([kept, dropped]))
        path = fused.dropped_path(member, task)
        members.append({
            "label": step.label,
            "rows_in": table.height,
            "rows_out": kept.height,
            "dropped": drop_counts(dropped),
            "seconds": round(time.perf_counter() - member_started, 4),
            "files": {relative(path, member.step_dir): write_shard(restored(dropped, member.expected), path)},
        })
        table = kept
    # The last member's files are the marker's own (the group's kept rows beside its dropped rows).
    files = members[-1]["files"]
    files[relative(task.output, task.output_dir)] = write_shard(table, task.output)
    stats = ShardStats(
        index=task.index,
        rows_in=rows_in,
        rows_out=table.height,
        dropped=members[-1]["dropped"],
        seconds=round(time.perf_counter() - started, 4),
        members=members,
        files=files,
    )
    write_json_atomic(stats.to_json(), task.marker)
    return stats


class FollowerPool:
    """The shard steps after a group's head, fed the head's kept shards as the head writes them:
    each shard runs through :func:`run_fused_frame` on one of ``workers`` threads (the members
    are thread-safe), at most ``2 * workers`` shards waiting, which bounds the memory. A shard
    whose marker says it is finished (a resumed run) is not run again."""

    def __init__(self, fused: FusedSteps, last_dir: Path, workers: int, on_done: Any):
        from concurrent.futures import ThreadPoolExecutor

        self.fused = fused
        self.last_dir = last_dir
        self.on_done = on_done
        self.workers = max(1, workers)
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix=f"curate-{fused.label}")
        self.pending: list[Any] = []
        self.results: dict[int, Any] = {}

    def _run(self, index: int, frame: pl.DataFrame) -> Any:
        from curate.shards import ShardTask

        task = ShardTask(index, Path(), self.last_dir)
        done, redone = finished_fused_shard(self.fused, task)
        if done is not None:
            return done
        stats = run_fused_frame(self.fused, task, frame)
        stats.redone = redone
        return stats

    def _collect(self, future: Any) -> None:
        stats = future.result()  # a member's error is raised here, in the head's thread
        self.results[stats.index] = stats
        self.on_done(stats)

    def submit(self, index: int, frame: pl.DataFrame) -> None:
        while len(self.pending) >= 2 * self.workers:
            self._collect(self.pending.pop(0))
        self.pending.append(self.pool.submit(self._run, index, frame))

    def finish(self) -> list[Any]:
        """Every shard's stats, in shard order, once all have run."""
        try:
            while self.pending:
                self._collect(self.pending.pop(0))
        finally:
            self.close()
        return [self.results[i] for i in sorted(self.results)]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pending = []
