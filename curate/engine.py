"""Executing a plan: source → steps → outputs, with caching, resume and a manifest.

Every step's output lives in a content-addressed store directory named by its fingerprint.
A step whose directory is complete is reused (the cache); a shard-scope step that was cut off
keeps its finished shards (resume); table-scope steps and the source are written to a
``.partial`` directory and renamed when done, so they are either whole or absent. A step is
reused only when its files are the ones its marker recorded, with the rows it says, and its
input is still the one it ran on (``runstore.cache_problem``, ``curate.inputdigest``); a step or
shard that disagrees is recomputed and said so in a ``StoreWarning`` naming the file. A run
holds its run directory's and store's locks (``curate.lock``) throughout, and checks that
every step returns each input uid once, kept or dropped with a reason (``check_nothing_lost``).
Consecutive thread-safe shard steps run fused (``curate.fusion``): one pass per shard, one cache
and resume unit, only the group's last kept rows stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import platform
import time
import warnings
from pathlib import Path
from typing import Any, Protocol

from curate import __version__, stopping
from curate.atomic import write_text_atomic
from curate.codechange import last_run, say_code_changes
from curate.diskspace import check_free, min_free_bytes, output_fix
from curate.errors import (
    ROOM_FIXES,
    CurateError,
    ResourceError,
    StepError,
    error_line,
    out_of_room,
    reported,
    resource_hint,
    room_left,
    stop_words,
)
from curate.fusion import FollowerPool, FusedSteps, Member
from curate.images import ImageGone, refetch_hint, untrusted_image_folders
from curate.ingest import ingest
from curate.inputdigest import CHANGED, StepInput, changed, computed_from, record_input
from curate.plan import Plan, PlannedStep
from curate.plugins import PluginManager
from curate.lock import locked
from curate.removal import check_recomputable, check_removable, remove_step_folders
from curate.runfiles import RETRY_NEXT, read_json, remove_tree
from curate.runstore import (
    COMPLETE,
    NOT_STORED,
    StoreWarning,
    check_step_dir,
    link_step,
    reopen_shards,
    write_manifest,
    write_views,
)
from curate.shapes import marker_facts
from curate.staleoutputs import earlier_outputs, say_stale, stale_outputs
from curate.storeusers import register
from curate.shards import (
    ShardStats,
    ShardTask,
    ShardWriter,
    check_nothing_lost,
    iter_dropped_files,
    iter_shard_files,
    table_frames,
    uids_of,
    write_json_atomic,
)
from curate.schema import Schema
from curate.step import Step, StepContext, TableInput
from curate.views import views_failed


class Observer(Protocol):
    def step_started(self, planned: PlannedStep, total_rows: int | None, cached: bool) -> None: ...
    def rows_done(self, planned: PlannedStep, rows: int) -> None: ...
    def step_finished(self, planned: PlannedStep, record: dict[str, Any]) -> None: ...


class NullObserver:
    def step_started(self, planned: PlannedStep, total_rows: int | None, cached: bool) -> None:
        pass

    def rows_done(self, planned: PlannedStep, rows: int) -> None:
        pass

    def step_finished(self, planned: PlannedStep, record: dict[str, Any]) -> None:
        pass


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Engine:
    def __init__(self, plan: Plan, pm: PluginManager, observer: Observer | None = None):
        self.plan = plan
        self.pm = pm
        self.observer = observer or NullObserver()
        self.spec = plan.spec
        self.run_dir = plan.run_dir
        self.min_free_disk = min_free_bytes(self.spec.run.min_free_disk, self.spec.run.untrusted)
        self.manifest: dict[str, Any] | None = None  # this run's, once it has one (`curate run --json`)

    # -- public ---------------------------------------------------------------------------
    def run(self, *, from_label: str | None = None, use_cache: bool = True,
            wait: float | None = 0, retry_failed: bool = False) -> dict[str, Any]:
        """Run the plan, holding the run directory's and the store's locks throughout: another
        run on either is refused (``wait=0``), or waited for (``wait`` seconds, None: forever).
        ``retry_failed``: steps whose finished output has rows that failed transiently
        (:meth:`Step.failed_to_retry`) run again on those rows only; later steps are recomputed."""
        plan = self.plan
        plan.check_layout()
        with locked([(self.run_dir, "run directory"), (plan.store_dir, "store")], wait=wait):
            return self._run_locked(from_label=from_label, use_cache=use_cache, retry_failed=retry_failed)

    def _reopen_for_retry(self) -> dict[str, int]:
        """Mark finished steps with transient failures unfinished (their files stay: the step
        reads its last results), and remove the steps after the first of them."""
        plan = self.plan
        retrying: dict[str, int] = {}
        for planned in plan.steps:
            step_dir = plan.step_dir(planned)
            if planned.step is None or plan.cache_problem(planned) is not None:
                continue  # not finished, or on an input since recomputed: it runs whole anyway
            count = planned.step.failed_to_retry(step_dir)
            if not count:
                continue
            retrying[planned.label] = count
            later = [(p.label, plan.step_dir(p)) for p in plan.steps[planned.index + 1:]]
            why = f"--retry-failed reruns step '{planned.label}' and recomputes the steps after it"
            check_removable([(planned.label, step_dir), *later], why)  # before its markers go
            reopen_shards(step_dir)
            (step_dir / COMPLETE).unlink()
            remove_step_folders(later, why)
            break  # the steps after it are recomputed from its new output anyway
        return retrying

    def _run_locked(self, *, from_label: str | None, use_cache: bool, retry_failed: bool = False) -> dict[str, Any]:
        plan = self.plan
        self.run_dir.mkdir(parents=True, exist_ok=True)
        plan.store_dir.mkdir(parents=True, exist_ok=True)
        if from_label is not None:
            # A fused group is one unit: --from a step inside it re-runs the whole group.
            start = plan.by_label(from_label).group[0]
            first = plan.steps[start].label
            why = f"--from {from_label} recomputes " + (
                "it and the steps after it" if first == from_label else f"its fused group from '{first}' on")
            remove_step_folders([(p.label, plan.step_dir(p)) for p in plan.steps[start:]], why)
        if not use_cache:
            remove_step_folders([(p.label, plan.step_dir(p)) for p in plan.steps], "--no-cache recomputes it")
        self.retrying = self._reopen_for_retry() if retry_failed else {}
        for output in plan.outputs:
            if output.sink.ctx.remote:
                from curate import remote

                remote.check_bucket(output.sink.ctx.path)
                remove_tree(output.sink.ctx.staging_dir)
            output.sink.preflight()

        # Written with the manifest, after the checks above: a run directory holding a spec.yaml but
        # no manifest or store/ would look like someone else's folder to the next run (curate.plan).
        earlier = earlier_outputs(self.run_dir)  # before the manifest that lists them is replaced
        say_code_changes(plan, last_run(self.run_dir))  # why an upgrade recomputes a step, before it does
        # whole: --resume reads it; the same spec leaves the file as it was (as the outputs: curate.atomic)
        write_text_atomic(self.run_dir / "spec.yaml", self.spec.dump_yaml(), keep_same=True)
        manifest = self.manifest = self._new_manifest()
        write_manifest(self.run_dir, manifest)
        # the store learns that this run directory uses it, and which folders (curate gc)
        register(plan.store_dir, self.run_dir, [(p.fingerprint, p.label, p.kind) for p in plan.steps])
        self.pm.notify("curate_run_started", run_dir=self.run_dir, spec=self.spec)
        started = time.perf_counter()
        executor = plan.resolved.executor
        assert executor is not None
        where = "the source"  # what was running, for an error raised outside a step's own code
        try:
            with plan.source.session(), executor.session():
                for planned in plan.steps:
                    if planned.index != planned.group[0]:
                        continue  # ran with its group
                    stopping.check()  # a stop some library caught and dropped
                    members = [p.label for p in plan.group_of(planned)]
                    where = f"step '{members[0]}'" if len(members) == 1 else \
                        "the steps " + ", ".join(f"'{label}'" for label in members)
                    if planned.fused:
                        records = self._run_group(plan.group_of(planned), executor)
                    else:
                        records = [self._run_step(planned, executor)]
                    for record in records:
                        manifest["steps"][record["index"]] = record
                    write_manifest(self.run_dir, manifest)
                    for record in records:
                        self.pm.notify("curate_step_finished", run_dir=self.run_dir, record=record)
                stopping.check()
                where = "the outputs"
                for output in plan.outputs:  # listed as written: a failure leaves the others stale
                    manifest["outputs"].append(self._write_output(output))
                stopping.check()
        except BaseException as exc:
            # DuckDB's "Query interrupted", or a step's failure wrapping it, after a signal: the stop
            stop, original = stopping.as_stop(exc), exc
            if stop is not None:
                exc = stop
            with contextlib.suppress(Warning):  # warnings as errors (a test) must not hide ``exc``
                self._note_stale(manifest, earlier, failed=True)
            # Out of memory or disk outside a step's own code (the source's ingest, an output):
            # say how to fix it instead of reporting an internal error.
            if isinstance(exc, CurateError):
                _name_the_image_step(exc, plan)
            if isinstance(exc, StepError):
                _name_the_plugin(exc, plan)
            resource = None if isinstance(exc, CurateError) else ResourceError.from_exception(exc, where)
            manifest["status"] = "failed" if not isinstance(exc, KeyboardInterrupt) else "interrupted"
            manifest["error"] = str(resource or exc)
            if isinstance(exc, KeyboardInterrupt):
                manifest["error"] = f"{stop_words(exc)} during {where}"
            manifest["finished_at"] = _now()
            write_manifest(self.run_dir, manifest)
            if resource is not None:
                raise resource from exc
            if stop is not None:
                raise stop from original
            raise
        manifest["status"] = "complete"
        self._note_stale(manifest, earlier, failed=False)
        manifest["finished_at"] = _now()
        manifest["seconds"] = round(time.perf_counter() - started, 3)
        failed = None
        try:  # before the manifest says complete: never beside the views of the run before (curate.views)
            write_views(self.run_dir, manifest)
        except Exception as exc:  # noqa: BLE001 - recorded, then raised below
            failed = views_failed(self.run_dir, manifest, exc)
        write_manifest(self.run_dir, manifest)
        try:
            self.pm.notify("curate_run_finished", run_dir=self.run_dir, manifest=manifest)
            stopping.check()
        except BaseException as exc:  # a stop: the run is complete, only what hooks write (the report) is not
            stop = exc if isinstance(exc, KeyboardInterrupt) else stopping.as_stop(exc)
            if stop is None:
                raise
            stop.after_complete = True  # type: ignore[attr-defined]
            if stop is exc:
                raise
            raise stop from exc
        if failed is not None:
            raise failed
        return manifest

    # -- internals ------------------------------------------------------------------------
    def _note_stale(self, manifest: dict[str, Any], earlier: list[dict[str, Any]], failed: bool) -> None:
        """Outputs of an earlier run that this one did not write again (curate.staleoutputs)."""
        outputs = [str(o.sink.ctx.output_path) for o in self.plan.outputs if not o.sink.ctx.remote]
        stale = stale_outputs(earlier, manifest["outputs"], manifest["spec_hash"], outputs)
        if stale:
            manifest["stale_outputs"] = stale
            say_stale(stale, failed)

    def _new_manifest(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "curate_version": __version__,
            "python": platform.python_version(),
            "name": self.spec.name,
            "spec_hash": self.spec.hash(),
            # Absolute: `curate run --resume RUN_DIR` reads it back, maybe from another directory.
            "spec_path": str(plan.loaded.origin.resolve()) if plan.loaded.origin else None,
            "run_dir": str(self.run_dir),
            "store_dir": str(plan.store_dir),
            "seed": self.spec.run.seed,
            "executor": self.spec.run.executor.name,
            "executor_where": plan.resolved.executor.where() if plan.resolved.executor is not None else None,
            "plugins": self.pm.plugin_versions(),
            "status": "running",
            "started_at": _now(),
            "steps": [self._pending_record(p) for p in plan.steps],
            "outputs": [],
        }

    def _pending_record(self, planned: PlannedStep) -> dict[str, Any]:
        from curate.schema import describe

        return {
            "index": planned.index,
            "label": planned.label,
            "step": planned.kind,
            "plugin": planned.plugin,
            "plugin_version": planned.plugin_version,
            **({"step_version": planned.step.version} if planned.step is not None else {}),
            "fingerprint": planned.fingerprint,
            "params": planned.params,
            "columns": describe(planned.output_schema),
            "writes": describe(planned.writes()),
            "path": str(self.plan.step_dir(planned)),
            "complete": False,
            "cached": False,
            **({"fused": [p.label for p in self.plan.group_of(planned)]} if planned.fused else {}),
        }

    def _context(self, planned: PlannedStep) -> StepContext:
        step_dir = self.plan.step_dir(planned)
        artifacts = step_dir / "artifacts"
        return StepContext(
            run_dir=self.run_dir,
            label=planned.label,
            seed=self.spec.run.seed,
            artifacts=artifacts,
            progress=lambda rows: self.observer.rows_done(planned, rows),
            memory_limit=self.spec.run.memory_limit,
            min_free_disk=self.min_free_disk,
            image_folders=untrusted_image_folders(self.run_dir, self.plan.store_dir) if self.spec.run.untrusted
            else None,
            extras={
                "store_dir": str(self.plan.store_dir),
                "step_dir": str(step_dir),
                # label → store dir of every upstream step, so a step can read their artifacts
                # (embeddings written by clip_score, say) without recomputing them.
                "upstream": {p.label: str(self.plan.step_dir(p)) for p in self.plan.steps[: planned.index]},
                **({"retry_failed": True} if planned.label in getattr(self, "retrying", {})
                   or (step_dir / RETRY_NEXT).exists() else {}),
            },
        )

    def _input_of(self, planned: PlannedStep) -> TableInput:
        upstream = self.plan.steps[planned.index - 1]
        return TableInput(iter_shard_files(self.plan.step_dir(upstream)), upstream.output_schema)

    def _run_step(self, planned: PlannedStep, executor: Any) -> dict[str, Any]:
        step_dir = self.plan.step_dir(planned)
        record = self._pending_record(planned)
        complete = step_dir / COMPLETE
        problem = self.plan.cache_problem(planned)
        if problem is None:
            self._reuse(planned, record)
            return record
        in_place = planned.step is not None and planned.step.scope != "table"
        if in_place:  # runs in its folder as found
            check_step_dir(step_dir, planned.label)
        check_recomputable((planned.label, problem), [(planned.label, step_dir, in_place)])
        said = []
        if complete.exists():  # a marker its files disagree with: recompute, and say why in the record
            record["cache_rejected"] = problem
            _say_recomputed(planned.label, problem)
            said.append(problem)
        step_input = self.plan.input_of(planned)
        if in_place:
            self._forget_other_input([planned], step_input, said)
        complete.unlink(missing_ok=True)
        started = time.perf_counter()
        ctx = self._context(planned)
        if planned.step is None:
            stats = self._run_source(planned, step_dir, ctx)
        elif planned.step.scope == "table":
            stats = self._run_table_step(planned, step_dir, ctx, executor)
        else:
            stats = self._run_shard_step(planned, step_dir, ctx, executor)
        stats["seconds"] = round(time.perf_counter() - started, 3)
        stats["finished_at"] = _now()
        if planned.label in getattr(self, "retrying", {}):
            stats["retried_rows"] = self.retrying[planned.label]
        stats.update(step_input.fields() if step_input else {})
        if planned.step is not None:
            self._check_results([planned], [ctx])
        write_json_atomic(stats, step_dir / COMPLETE)
        (step_dir / RETRY_NEXT).unlink(missing_ok=True)
        record.update(marker_facts(stats), complete=True)
        link_step(self.run_dir, planned.dirname, step_dir)
        self.observer.step_finished(planned, record)
        return record

    def _check_results(self, members: list[PlannedStep], contexts: list[StepContext]) -> None:
        """Fail the run where a finished step's plugin refuses its result (:meth:`Step.result_problem`:
        a download whose servers were down), before it (or any member of its fused group, later ones
        computed from its rows) is marked complete, so no later run reuses it as good: every
        member's shards are reopened (their files stay; a group's markers are its last member's),
        and each refusing one's next run retries the rows that failed transiently (``RETRY_NEXT``),
        as --retry-failed does."""
        refused = [(planned, problem) for planned, ctx in zip(members, contexts) if planned.step is not None
                   and (problem := planned.step.result_problem(ctx)) is not None]
        if not refused:
            return
        for planned in members:
            reopen_shards(self.plan.step_dir(planned))
        for planned, (message, _) in refused:
            write_json_atomic({"error": message}, self.plan.step_dir(planned) / RETRY_NEXT)
        planned, (message, hint) = refused[0]
        raise StepError(planned.label, None, message, hint)

    def _run_group(self, members: list[PlannedStep], executor: Any) -> list[dict[str, Any]]:
        """A fused group (curate.fusion): one pass per shard through every member. Reused when
        every member is complete; else run, keeping the shards a cut-off run finished."""
        plan = self.plan
        records = [self._pending_record(p) for p in members]
        problems = [plan.cache_problem(p) for p in members]
        if all(problem is None for problem in problems):
            for planned, record in zip(members, records):
                self._reuse(planned, record)
            return records
        head = members[0]
        headed = head.step is None or head.step.scope == "table"
        # A head that stored its kept rows (it ran alone before: another variant of an
        # experiment, another executor) is reused, and its followers read them as a group
        # headed by a shard step would: the head runs once, as a step alone does.
        reuse_head = plan.reusable_head(head)
        in_place = members[1:] if headed or reuse_head else members  # they run in their folders as found
        for planned in in_place:
            check_step_dir(plan.step_dir(planned), planned.label)
        damaged = [(p.label, problem) for p, problem in zip(members, problems) if problem is not None]
        check_recomputable(next((d for d in damaged if d[1] != NOT_STORED), damaged[0]),
                           [(p.label, plan.step_dir(p), position > 0 or not headed)
                            for position, p in enumerate(members) if position > 0 or not reuse_head])
        rerun = [(planned, record, problem) for position, (planned, record, problem)
                 in enumerate(zip(members, records, problems)) if position or not reuse_head]
        said = []
        for planned, record, problem in rerun:
            if (plan.step_dir(planned) / COMPLETE).exists() and problem is not None:
                # stale or disagreeing with its files: the group is recomputed
                record["cache_rejected"] = problem
                _say_recomputed(planned.label, problem)
                said.append(problem)
        # What the group reads from the store: what its head reads (a reused head's rows, for its
        # followers); every member records it as its input (curate.inputdigest).
        group_input = plan.input_of(in_place[0] if reuse_head else head)
        self._forget_other_input(in_place, group_input, said)
        for planned, _, _ in rerun:
            (plan.step_dir(planned) / COMPLETE).unlink(missing_ok=True)
        if reuse_head:
            self._reuse(head, records[0])
            return [records[0], *self._run_fused_shards(members[1:], records[1:], executor, group_input)]
        if headed:
            return self._run_headed_group(members, records, group_input)
        return self._run_fused_shards(members, records, executor, group_input)

    def _forget_other_input(self, members: list[PlannedStep], step_input: StepInput | None,
                            said: list[str]) -> None:
        """Before ``members`` (a step, or a fused group's steps that run in their folders) compute
        from ``step_input`` (curate.inputdigest): what their folders hold from another input is
        removed (finished shards, a download's finished parts), all of them, so a resumed step
        never mixes shards of two inputs; then each folder records the input's digest. ``said``:
        the reasons their markers were not reused, already said (a marker on another input is;
        leftovers of an unfinished step on another input are said here). None: no input to
        compare (the source's, whose identity is its fingerprint)."""
        if step_input is None:
            return
        folders = [(p.label, self.plan.step_dir(p)) for p in members]
        told = any(problem.startswith(CHANGED) for problem in said)
        stale = [label for label, folder in folders if computed_from(folder) not in (None, step_input.digest)]
        if told or stale:
            why = changed(step_input.label)
            if not told:
                warnings.warn(f"step '{stale[0]}' starts over: what it had computed before it was cut off "
                              f"came from another input: {why}", StoreWarning, stacklevel=2)
            remove_step_folders(folders, why)
        for _, folder in folders:
            record_input(folder, step_input.digest)

    def _reuse(self, planned: PlannedStep, record: dict[str, Any]) -> None:
        """A complete step's record from its marker, as cached."""
        step_dir = self.plan.step_dir(planned)
        stats = read_json(step_dir / COMPLETE)
        self.observer.step_started(planned, stats.get("rows_in"), True)
        record.update(marker_facts(stats), cached=True, complete=True)
        link_step(self.run_dir, planned.dirname, step_dir)
        self.observer.step_finished(planned, record)

    def _run_fused_shards(self, members: list[PlannedStep], records: list[dict[str, Any]],
                          executor: Any, group_input: StepInput | None) -> list[dict[str, Any]]:
        """Shard steps of a fused group (all of it, or the followers of a reused head): the
        executor runs each of their input's shards through every member."""
        plan = self.plan
        started = time.perf_counter()
        last = members[-1]
        contexts = [self._context(p) for p in members]
        fused = FusedSteps([
            Member(p.step, p.output_schema, plan.step_dir(p), dataclasses.replace(ctx, progress=None))
            for p, ctx in zip(members, contexts) if p.step is not None
        ])
        for ctx in contexts:
            ctx.artifacts.mkdir(parents=True, exist_ok=True)
        table = self._input_of(members[0])
        tasks = [ShardTask(i, path, plan.step_dir(last)) for i, path in enumerate(table.files)]
        total = _count_rows(table.files)
        for position, planned in enumerate(members):
            self.observer.step_started(planned, total if position == 0 else None, False)

        def on_done(stats: ShardStats) -> None:
            _say_shard_recomputed(fused.label, stats)
            for planned, facts in zip(members, stats.members or []):
                self.observer.rows_done(planned, facts["rows_in"])

        group_ctx = dataclasses.replace(contexts[-1], label=fused.label, progress=None)
        results: list[ShardStats] = executor.map_shards(fused, tasks, group_ctx, last.output_schema,
                                                        on_done=on_done)
        seconds = round(time.perf_counter() - started, 3)
        self._check_results(members, contexts)
        self._finish_members(members, records, contexts, results, seconds, group_input)
        return records

    def _finish_members(self, members: list[PlannedStep], records: list[dict[str, Any]],
                        contexts: list[StepContext], results: list[ShardStats], seconds: float,
                        group_input: StepInput | None) -> None:
        """Each member's _COMPLETE.json and record, from its facts in every shard's marker; each
        records ``group_input``, what the group read (curate.inputdigest)."""
        plan = self.plan
        last = members[-1]
        member_seconds = [sum(s.members[i]["seconds"] for s in results if s.members) for i in range(len(members))]
        busy = sum(member_seconds) or 1.0
        finished_at = _now()
        for position, (planned, record, ctx) in enumerate(zip(members, records, contexts)):
            facts = [s.members[position] for s in results if s.members]
            dropped: dict[str, int] = {}
            for fact in facts:
                for reason, count in fact["dropped"].items():
                    dropped[reason] = dropped.get(reason, 0) + count
            is_last = planned is last
            assert planned.step is not None
            stats = {
                "rows_in": sum(f["rows_in"] for f in facts),
                "rows_out": sum(f["rows_out"] for f in facts),
                "dropped": dict(sorted(dropped.items())),
                "shards": len(results),
                "kept_rows_stored": is_last,
                "shard_seconds": round(member_seconds[position], 3),
                # The group's wall time, shared by the members in proportion to their shard time.
                "seconds": round(seconds * member_seconds[position] / busy, 3),
                "group_seconds": seconds,
                "finished_at": finished_at,
                "summary": planned.step.summary(ctx),
                **_files_entry([f.get("files") for f in facts]),
                **(group_input.fields() if group_input else {}),
            }
            step_dir = plan.step_dir(planned)
            write_json_atomic(stats, step_dir / COMPLETE)
            (step_dir / RETRY_NEXT).unlink(missing_ok=True)
            record.update(marker_facts(stats), complete=True)
            link_step(self.run_dir, planned.dirname, step_dir)
            self.observer.step_finished(planned, record)

    def _run_headed_group(self, members: list[PlannedStep], records: list[dict[str, Any]],
                          group_input: StepInput | None) -> list[dict[str, Any]]:
        """A group headed by the source or a table step (``curate.fusion.fusable_head``): the head
        runs whole, as alone, but each kept shard it would write goes through the shard steps
        after it in memory (on a thread pool); the head stores its dropped rows only. Shards the
        followers finished before a kill are not redone (the head is deterministic)."""
        import os

        plan = self.plan
        head, followers, last = members[0], members[1:], members[-1]
        started = time.perf_counter()
        contexts = [self._context(p) for p in members]
        fused = FusedSteps([
            Member(p.step, p.output_schema, plan.step_dir(p), dataclasses.replace(ctx, progress=None))
            for p, ctx in zip(followers, contexts[1:]) if p.step is not None
        ])
        for ctx in contexts[1:]:
            ctx.artifacts.mkdir(parents=True, exist_ok=True)
        fused.setup(contexts[-1])

        def on_done(stats: ShardStats) -> None:
            _say_shard_recomputed(fused.label, stats)
            for planned, facts in zip(followers, stats.members or []):
                self.observer.rows_done(planned, facts["rows_in"])

        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        pool = FollowerPool(fused, plan.step_dir(last), workers, on_done)
        head_dir = plan.step_dir(head)
        partial = self._partial(head_dir)
        ctx = contexts[0]
        ctx.artifacts = partial / "artifacts"

        def kept_files() -> list[Path]:
            pool.finish()
            return [*iter_shard_files(plan.step_dir(last)),
                    *(f for p in followers for f in iter_dropped_files(plan.step_dir(p)))]

        try:
            if head.step is None:
                self.observer.step_started(head, None, False)
                for planned in followers:
                    self.observer.step_started(planned, None, False)
                stats = ingest(self.plan.source, self.spec.source, head.output_schema, partial,
                               self.spec.run.shard_size, ctx, kept_sink=pool.submit, kept_files=kept_files)
            else:
                step = head.step
                table = self._input_of(head)
                total = _count_rows(table.files)
                self.observer.step_started(head, total, False)
                for planned in followers:
                    self.observer.step_started(planned, None, False)
                ctx.artifacts.mkdir(parents=True, exist_ok=True)
                writer = ShardWriter(step, partial, self.spec.run.shard_size, head.output_schema,
                                     kept_sink=pool.submit, min_free_disk=ctx.min_free_disk)
                shards = _write_table_step(step, table, ctx, writer, head.output_schema)
                # Its kept rows are the last member's kept rows and every follower's dropped rows.
                check_nothing_lost(step, None, uids_of(table.files),
                                   uids_of([*kept_files(), *iter_dropped_files(partial)]))
                stats = {
                    "rows_in": total,
                    "rows_out": writer.rows_out,
                    "dropped": dict(sorted(writer.dropped.items())),
                    "shards": shards,
                    "files": writer.files,
                }
            results = pool.finish()
        finally:
            pool.close()
        self._commit(partial, head_dir, head.label)
        if head.step is not None:
            ctx.artifacts = head_dir / "artifacts"  # the summary sees the artifacts where they now are
            stats["summary"] = head.step.summary(ctx)
        seconds = round(time.perf_counter() - started, 3)
        follower_busy = sum(s.seconds for s in results)
        stats.setdefault("kept_rows_stored", False)  # a staged source stores its rows
        stats["group_seconds"] = seconds
        stats["seconds"] = round(max(seconds - follower_busy / max(1, workers), 0.0), 3)
        stats["finished_at"] = _now()
        stats.update(group_input.fields() if group_input else {})
        self._check_results(members, contexts)
        write_json_atomic(stats, head_dir / COMPLETE)
        (head_dir / RETRY_NEXT).unlink(missing_ok=True)
        records[0].update(marker_facts(stats), complete=True)
        link_step(self.run_dir, head.dirname, head_dir)
        self.observer.step_finished(head, records[0])
        self._finish_members(followers, records[1:], contexts[1:], results, seconds, group_input)
        return records

    def _partial(self, step_dir: Path) -> Path:
        partial = step_dir.with_name(step_dir.name + ".partial")
        remove_tree(partial)  # a link or a pipe there too: the store may be someone else's
        partial.mkdir(parents=True)
        return partial

    def _commit(self, partial: Path, step_dir: Path, label: str) -> None:
        """Put a finished ``.partial`` folder in place of the step's old, unfinished one."""
        remove_step_folders([(label, step_dir)], "its new output replaces the old folder")
        partial.rename(step_dir)

    def _run_source(self, planned: PlannedStep, step_dir: Path, ctx: StepContext) -> dict[str, Any]:
        self.observer.step_started(planned, None, False)
        partial = self._partial(step_dir)
        ctx.artifacts = partial / "artifacts"
        stats = ingest(self.plan.source, self.spec.source, planned.output_schema, partial,
                       self.spec.run.shard_size, ctx)
        self._commit(partial, step_dir, planned.label)
        return stats

    def _run_table_step(self, planned: PlannedStep, step_dir: Path, ctx: StepContext, executor: Any):
        step = planned.step
        assert step is not None
        table = self._input_of(planned)
        total = _count_rows(table.files)
        self.observer.step_started(planned, total, False)
        partial = self._partial(step_dir)
        ctx.artifacts = partial / "artifacts"
        ctx.artifacts.mkdir(parents=True, exist_ok=True)
        writer = ShardWriter(step, partial, self.spec.run.shard_size, planned.output_schema,
                             min_free_disk=ctx.min_free_disk)
        shards = _write_table_step(step, table, ctx, writer, planned.output_schema)
        check_nothing_lost(step, None, uids_of(table.files),
                           uids_of([*iter_shard_files(partial), *iter_dropped_files(partial)]))
        self._commit(partial, step_dir, planned.label)
        ctx.artifacts = step_dir / "artifacts"  # the summary sees the artifacts where they now are
        return {
            "rows_in": total,
            "rows_out": writer.rows_out,
            "dropped": dict(sorted(writer.dropped.items())),
            "shards": shards,
            "summary": step.summary(ctx),
            "files": writer.files,
        }

    def _run_shard_step(self, planned: PlannedStep, step_dir: Path, ctx: StepContext, executor: Any):
        step = planned.step
        assert step is not None
        table = self._input_of(planned)
        tasks = [ShardTask(i, path, step_dir) for i, path in enumerate(table.files)]
        total = _count_rows(table.files)
        self.observer.step_started(planned, total, False)
        ctx.artifacts.mkdir(parents=True, exist_ok=True)
        # Steps may report rows inside a shard (model steps do, per batch); the rest of the
        # shard's rows are reported when it finishes, so the bar always ends at the total.
        reported: dict[int | None, int] = {}

        def progress(rows: int) -> None:
            reported[ctx.shard] = reported.get(ctx.shard, 0) + rows
            self.observer.rows_done(planned, rows)

        def on_done(stats: ShardStats) -> None:
            _say_shard_recomputed(planned.label, stats)
            rest = stats.rows_in - reported.pop(stats.index, 0)
            if rest > 0:
                self.observer.rows_done(planned, rest)

        ctx.progress = progress
        results: list[ShardStats] = executor.map_shards(step, tasks, ctx, planned.output_schema, on_done=on_done)
        dropped: dict[str, int] = {}
        for stats in results:
            for reason, count in stats.dropped.items():
                dropped[reason] = dropped.get(reason, 0) + count
        return {
            "rows_in": sum(s.rows_in for s in results),
            "rows_out": sum(s.rows_out for s in results),
            "dropped": dict(sorted(dropped.items())),
            "shards": len(results),
            "shard_seconds": round(sum(s.seconds for s in results), 3),
            "summary": step.summary(ctx),
            **_files_entry([s.files for s in results]),
            **_images_entry([s.images for s in results]),
        }

    def _write_output(self, output: Any) -> dict[str, Any]:
        planned = self.plan.by_label(output.step_label)
        table = TableInput(iter_shard_files(self.plan.step_dir(planned)), planned.output_schema)
        started = time.perf_counter()
        ctx = output.sink.ctx
        if ctx.remote:  # written locally first, uploaded whole (see curate.remote)
            from curate import remote

            remove_tree(ctx.staging_dir)
            ctx.staging_dir.mkdir(parents=True)
        written = ctx.staging_dir if ctx.remote else ctx.resolve(output.path)
        ctx.min_free_disk = self.min_free_disk
        check_free(written, self.min_free_disk, f"before writing output '{output.path}'", output_fix(output.path))
        owner = self.pm.sinks.owners.get(output.sink.format, "?")
        try:
            facts = output.sink.write(table)
        except CurateError:
            raise
        except BaseException as exc:
            if not reported(exc):
                raise
            if isinstance(exc, ImageGone):  # not the sink's bug, nor its folder's: the store lost images
                raise CurateError(f"output '{output.path}' ({output.sink.format}) failed: {exc}",
                                  exc.hint) from exc
            room = out_of_room(exc)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if room == errno.ENOSPC:  # min_free_disk 0, or a disk filled by someone else meanwhile
                raise ResourceError(f"output '{output.path}' could not be written, the disk holding {written} is "
                                    f"full ({first})", output_fix(output.path, self.min_free_disk)) from exc
            if room is not None:  # a quota, or a file-size limit (ulimit -f)
                fix = resource_hint(exc) if room != errno.EFBIG else (
                    f"{ROOM_FIXES[errno.EFBIG].fix}, or write output "
                    f"'{output.path}' where larger files are allowed; a re-run writes only the outputs")
                raise ResourceError(f"output '{output.path}' could not be written to {written}: {first}"
                                    f"{room_left(exc)}", fix) from exc
            hint = (f"check that {written} can be written (a folder there, its permissions)"
                    if isinstance(exc, OSError) else
                    f"this is a bug in plugin '{owner}' (its '{output.sink.format}' sink); "
                    f"curate --debug run shows where")
            raise CurateError(f"output '{output.path}' ({output.sink.format}) failed: {error_line(exc)}",
                              hint) from exc
        if facts is not None and not isinstance(facts, dict):
            raise CurateError(f"output '{output.path}': the '{output.sink.format}' sink's write() returned "
                              f"{type(facts).__name__}, not a dict of facts (or None)",
                              f"this is a bug in plugin '{owner}'")
        if output.sink.path_kind in ("file", "folder") and not ctx.output_path.exists():
            raise CurateError(f"output '{output.path}': the '{output.sink.format}' sink returned without writing "
                              f"its {output.sink.path_kind} {ctx.output_path}", f"this is a bug in plugin '{owner}'")
        facts = dict(facts or {})
        if ctx.remote:
            sent = remote.publish(ctx.output_path, ctx.path, "_CURATE_EXPORT.json")
            remove_tree(ctx.staging_dir)
            facts.pop("path", None)
            facts["published"] = sent  # objects uploaded, left as they were (the same bytes), deleted
            if isinstance(facts.get("pattern"), str):
                facts["pattern"] = facts["pattern"].replace(str(ctx.output_path), ctx.path.rstrip("/"))
        return {
            "format": output.sink.format,
            "step": output.step_label,
            "path": ctx.path if ctx.remote else str(ctx.output_path),
            "seconds": round(time.perf_counter() - started, 3),
            **facts,
        }


def _name_the_plugin(error: StepError, plan: Plan) -> None:
    """A step's failure names the plugin whose step it is (and its version): the fix lies there."""
    planned = next((p for p in plan.steps if p.label == error.step_label), None)
    if planned is None or not planned.plugin:
        return
    where = f"plugin '{planned.plugin}' {planned.plugin_version} (its step '{planned.kind}')"
    if error.hint and "the step's plugin" in error.hint:
        error.hint = error.hint.replace("the step's plugin", where)
    elif error.hint is None:
        error.hint = f"raised in {where}; `curate --debug run …` shows where"
    else:
        return
    error.args = (*error.args[:3], error.hint)


def _name_the_image_step(error: CurateError, plan: Plan) -> None:
    """An image gone from the run's store (:class:`curate.images.ImageGone`): its fix names the
    step that stored it, the one whose store folder the missing file lies in."""
    generic = refetch_hint()
    if not error.hint or generic not in error.hint:
        return
    for planned in plan.steps:
        if f"/{plan.step_dir(planned).name}/" in error.message.replace("\\", "/"):
            error.hint = error.hint.replace(generic, refetch_hint(planned.label))
            error.args = (*error.args[:-1], error.hint)
            return


def _say_recomputed(label: str, problem: str) -> None:
    """A complete step that is not reused: said as a StoreWarning when its marker and files
    disagree (a step that stored no kept rows, where they are now needed, is no surprise)."""
    if problem != NOT_STORED:
        warnings.warn(f"step '{label}' is recomputed: {problem}", StoreWarning, stacklevel=2)


def _say_shard_recomputed(label: str, stats: ShardStats) -> None:
    if stats.redone is not None:
        warnings.warn(f"step '{label}', shard {stats.index} was recomputed: {stats.redone}", StoreWarning,
                      stacklevel=2)


def _files_entry(parts: list[dict[str, str] | None]) -> dict[str, Any]:
    """A step's ``files`` (fingerprints of what it stored) from its shards' markers, as the
    entry of its _COMPLETE.json; none when a shard's marker was written before fingerprints
    (a run resumed across an upgrade): the step is then trusted on its row counts, as before."""
    if any(part is None for part in parts):
        return {}
    return {"files": {path: fingerprint for part in parts for path, fingerprint in part.items()}}


def _images_entry(parts: list[dict[str, str] | None]) -> dict[str, Any]:
    """A step's ``images`` (sizes of the image files its rows point at in its folder,
    ``curate.storedimages``) from its shards' markers, as the entry of its _COMPLETE.json."""
    images = {path: size for part in parts if part for path, size in part.items()}
    return {"images": images} if images else {}


def _write_table_step(step: Step, table: TableInput, ctx: StepContext, writer: ShardWriter, schema: Schema) -> int:
    """Run a table step whole and write what it yields through ``writer`` (kept shards, to disk or
    to a group's followers, and dropped rows); returns the number of kept shards. A plugin's bug
    becomes a StepError naming the step, with the cause kept."""
    step.setup(ctx)
    try:
        for frame in table_frames(step, step.process_table(table, ctx)):
            writer.add(frame)
    except CurateError:
        raise
    except BaseException as exc:
        if not reported(exc):
            raise
        raise StepError.from_exception(step.label, None, exc) from exc
    return writer.close(empty_schema=schema)


def _count_rows(files: list[Path]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
