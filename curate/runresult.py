"""A run directory read from Python: :class:`Run`, what :func:`curate.run` returns and
:func:`curate.open_run` opens.

It reads what ``curate inspect`` reads (the manifest, the stored files' check, the lock) and the
rows the run's DuckDB views read (:mod:`curate.steprows`), as Polars LazyFrames over the stored
Parquet shards: nothing is read until a frame is collected, and nothing in the run directory is
written. Text in a run directory is anyone's (it may come from someone else): it is returned as
it stands, for the caller to show as they see fit (:func:`curate.display.visible`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curate.errors import RunDirError, UsageError

if TYPE_CHECKING:
    import polars as pl


class RunMovedWarning(UserWarning):
    """The run directory was written elsewhere: its manifest (and its views) name the files there."""


@dataclass(frozen=True)
class StepFacts:
    """One step of a run (the source is step 0), as ``curate run --json`` lists it under
    ``steps`` (the fields of ``curate inspect --json``'s records of the same names). ``record``:
    the whole record of the manifest (fingerprint, params, columns, summary facts…)."""

    index: int
    label: str
    step: str
    plugin: str | None
    rows_in: int | None
    rows_out: int | None
    dropped: dict[str, int]
    seconds: float | None
    cached: bool
    complete: bool
    record: dict[str, Any] = field(repr=False, compare=False)

    @property
    def summary(self) -> dict[str, Any]:
        """The facts the step's plugin reported on its run (its ``summary``), or {}."""
        value = self.record.get("summary")
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class OutputFacts:
    """One output the run wrote, as ``curate run --json`` lists it under ``outputs``: ``path`` is a
    local path or a storage URL; ``bytes`` is the file's size (or every file's under an output
    folder; None for a URL); ``facts`` is the manifest's whole entry (the sink's own facts too)."""

    format: str
    step: str | None
    path: str
    rows: int | None
    seconds: float | None
    bytes: int | None
    facts: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Drop:
    """Where a row was dropped, as the run's ``lineage`` view says: the step (its index and
    label), the reason, and the uid of the row it duplicated (dedup steps; else None)."""

    step_index: int
    step: str
    reason: str
    duplicate_of: Any


class Run:
    """A run directory: its status, steps, outputs and rows.

    ``warnings`` lists the warnings curate and its plugins gave while the :func:`curate.run` call
    that returned it ran ([] for :func:`curate.open_run`). The manifest is read when the object
    is made; :meth:`refresh` reads it again (a run another process is running moves on).
    """

    def __init__(self, run_dir: str | Path, manifest: dict[str, Any] | None = None,
                 warnings: list[str] | None = None):
        from curate.runstore import read_manifest

        self.run_dir = Path(run_dir).absolute()
        self.manifest: dict[str, Any] = manifest if manifest is not None else read_manifest(self.run_dir)
        self.warnings: list[str] = list(warnings or [])

    def refresh(self) -> Run:
        """This run, its manifest read again (its ``warnings`` kept)."""
        return Run(self.run_dir, warnings=self.warnings)

    def __repr__(self) -> str:
        return (f"<curate.Run {self.name!r} {self.status}: {self.run_dir}, "
                f"{len(self.manifest.get('steps', []))} steps>")

    # -- what inspect says ----------------------------------------------------------------------
    @property
    def name(self) -> str | None:
        return self.manifest.get("name")

    @property
    def status(self) -> str | None:
        """``complete``, ``failed``, ``interrupted`` or ``running``, as the manifest says (a run
        killed by SIGKILL says ``running`` for good: :attr:`state` tells)."""
        return self.manifest.get("status")

    @property
    def state(self) -> str | None:
        """:attr:`status`, but ``stopped`` for a run that says ``running`` and that no process
        runs now (``curate inspect --json``'s ``state``)."""
        from curate.lock import held
        from curate.runfacts import state

        return state(self.manifest, held(self.run_dir))

    @property
    def error(self) -> str | None:
        """What ended a run that did not complete (the message ``curate`` printed), else None."""
        return self.manifest.get("error") if self.status != "complete" else None

    @property
    def spec_hash(self) -> str | None:
        return self.manifest.get("spec_hash")

    @property
    def steps(self) -> list[StepFacts]:
        """Every step, the source first, with rows in and out, drops by reason, seconds, and
        whether it was reused (``cached``) and finished (``complete``)."""
        by_index = {record.get("index"): record for record in self.manifest.get("steps", [])}
        return [StepFacts(**row, record=by_index.get(row["index"], {})) for row in self.funnel()]

    def funnel(self) -> list[dict[str, Any]]:
        """The steps as ``curate run --json`` lists them under ``steps`` (plain dicts)."""
        from curate.runstore import funnel

        return funnel(self.manifest)

    def inspect(self, verify: bool = False) -> dict[str, Any]:
        """What ``curate inspect RUN_DIR --json`` prints: the manifest with ``damaged`` (the stored
        files' check; ``verify`` reads every file, as ``--verify``), ``verified``, ``lock_held``
        and ``state``."""
        from curate.runfacts import run_facts

        return run_facts(self.run_dir, verify).as_json()

    @property
    def outputs(self) -> list[OutputFacts]:
        """The outputs this run wrote, in the spec's order."""
        from curate.jsonsummary import size_of

        return [OutputFacts(output.get("format"), output.get("step"), output.get("path"), output.get("rows"),
                             output.get("seconds"), size_of(output.get("path")), dict(output))
                for output in self.manifest.get("outputs", [])]

    @property
    def report_path(self) -> Path | None:
        """``report.html``, where the report plugin wrote one (``run.report``), else None."""
        path = self.run_dir / "report.html"
        return path if path.is_file() else None

    @property
    def database_path(self) -> Path | None:
        """``curate.duckdb``: a DuckDB view per step, its drops, ``final`` and ``lineage``."""
        from curate.runstore import DATABASE

        path = self.run_dir / DATABASE
        return path if path.is_file() else None

    # -- rows -----------------------------------------------------------------------------------
    def table(self, step: str | int, *, dropped: bool = False) -> pl.LazyFrame:
        """The rows step ``step`` (its label, or its index: 0 is the source) kept, or with
        ``dropped`` the rows it dropped with their ``_drop_reason`` (and ``_duplicate_of``): the
        view ``NN_label`` (``NN_label_dropped``) of the run's ``curate.duckdb``, as a LazyFrame
        over the stored shards. A RunDirError where the step did not finish or its files are not
        as stored (``curate.run(resume=RUN_DIR)`` recomputes them)."""
        record = self._record(step)
        rows = self._rows(record)
        if dropped:
            return rows.dropped_frame() if rows.dropped else _none_dropped(rows)
        if rows.kept is None:
            raise RunDirError(f"the rows step '{record['label']}' kept cannot be read from {self.run_dir}: "
                              "its store holds neither their shards nor the files they were read from",
                              f"curate run --resume {self.run_dir} computes them again")
        return rows.kept.frame()

    def final(self) -> pl.LazyFrame:
        """The rows the run's last finished step kept: the ``final`` view."""
        finished = [r for r in self.manifest.get("steps", []) if r.get("complete")]
        if not finished:
            raise RunDirError(f"no step of the run in {self.run_dir} finished (status {self.status})",
                              f"curate run --resume {self.run_dir} runs it")
        return self.table(finished[-1]["label"])

    def lineage_table(self) -> pl.LazyFrame:
        """Every dropped row: ``uid``, ``step_index``, ``step``, ``reason``, ``duplicate_of`` (the
        ``lineage`` view), in step order."""
        import polars as pl

        from curate.schema import DROP_REASON, DUPLICATE_OF, UID
        from curate.steprows import finished_steps

        self._check_stored([r["label"] for r in self.manifest.get("steps", []) if r.get("complete")])
        parts = []
        for rows in finished_steps(self.manifest):
            if not rows.in_lineage:
                continue
            duplicate = pl.col(DUPLICATE_OF) if DUPLICATE_OF in rows.dropped_columns else pl.lit(None, pl.Utf8)
            parts.append(rows.dropped_frame().select(
                pl.col(UID), pl.lit(rows.index, pl.Int32).alias("step_index"), pl.lit(rows.label).alias("step"),
                pl.col(DROP_REASON).alias("reason"), duplicate.alias("duplicate_of")))
        if not parts:
            return pl.LazyFrame(schema={UID: pl.Utf8, "step_index": pl.Int32, "step": pl.Utf8, "reason": pl.Utf8,
                                        "duplicate_of": pl.Utf8})
        return pl.concat(parts, how="vertical_relaxed")

    def lineage(self, uid: Any) -> list[Drop]:
        """Where the row ``uid`` was dropped (a step drops a row once, so at most one entry, or
        none for a row the run kept or never read)."""
        import polars as pl

        frame = self.lineage_table()
        uid_type = frame.collect_schema()["uid"]
        wanted = pl.lit(uid).cast(uid_type, strict=False) if uid_type != pl.Utf8 else pl.lit(str(uid))
        found = frame.filter(pl.col("uid") == wanted).collect()
        return [Drop(row["step_index"], row["step"], row["reason"], row["duplicate_of"])
                for row in found.iter_rows(named=True)]

    # -- helpers --------------------------------------------------------------------------------
    def _record(self, step: str | int) -> dict[str, Any]:
        from curate.suggest import did_you_mean

        records = self.manifest.get("steps", [])
        key = "index" if isinstance(step, int) else "label"
        record = next((r for r in records if r.get(key) == step), None)
        if record is None:
            labels = [str(r.get("label")) for r in records]
            hint = did_you_mean(str(step), labels, f"labels: {', '.join(labels)}") if key == "label" else \
                f"indexes 0 to {len(records) - 1}"
            raise UsageError(f"no step {'labelled ' + repr(step) if key == 'label' else step} in the run in "
                             f"{self.run_dir}", hint)
        if not record.get("complete"):
            raise RunDirError(f"step '{record['label']}' did not finish in the run in {self.run_dir} "
                              f"(status {self.status})", f"curate run --resume {self.run_dir} finishes it")
        return record

    def _rows(self, record: dict[str, Any]) -> Any:
        from curate.steprows import step_rows

        # a fused step's kept rows are read from the steps after it in its group
        fused = record.get("fused") or []
        self._check_stored([record["label"], *fused[fused.index(record["label"]) + 1:]]
                           if record["label"] in fused else [record["label"]])
        self._say_if_moved()
        return step_rows(self.manifest, record)

    def _check_stored(self, labels: list[str]) -> None:
        """A RunDirError where a step of ``labels`` is not as stored (gone, cut short, rewritten)."""
        from curate.storecheck import stored_problems

        for label, problem in stored_problems(self.manifest):
            if label in labels:
                raise RunDirError(f"step '{label}' of the run in {self.run_dir} is not as it was stored: {problem}",
                                  f"curate run --resume {self.run_dir} recomputes it")

    def _say_if_moved(self) -> None:
        recorded = self.manifest.get("run_dir")
        if isinstance(recorded, str) and Path(recorded).resolve() != self.run_dir.resolve():
            warnings.warn(f"the run directory {self.run_dir} was written at {recorded}: its manifest names the "
                          f"files there, and they are what its tables read; `curate relocate {self.run_dir}` "
                          f"points it here", RunMovedWarning, stacklevel=3)


def _none_dropped(rows: Any) -> Any:
    """No rows with their reason: a step that stored no dropped shard (there is no view of them)."""
    import polars as pl

    from curate.schema import DROP_REASON

    kept = rows.kept.frame().head(0) if rows.kept is not None else pl.LazyFrame()
    return kept.with_columns(pl.lit(None, pl.Utf8).alias(DROP_REASON))
