"""curate from Python: run a spec, check it, plan it and read a run, in this process, without the CLI.

    import curate, polars as pl

    run = curate.run("specs/quickstart.yaml")          # or YAML text, or a dict
    run.status, [(s.label, s.rows_out) for s in run.steps]
    run.final().filter(pl.col("caption_source") == "synthetic").collect()

Each function does what its command does, with the command's own code (:mod:`curate.runner`): the
same checks, the same run directory and lock, the same errors. What the command does around a
run that a call in someone else's process does differently, on purpose:

- **Errors** are raised, never printed: a :class:`curate.CurateError` subclass whose ``str()``
  is the message ``curate`` prints after ``error:`` (hint included), with ``run_dir`` set to the
  run directory (None where the spec did not plan). A bug is raised as it is. A stop (Ctrl-C,
  SIGTERM) is raised as the ``KeyboardInterrupt`` it is, with ``run_dir`` and a note saying how to
  resume: the run directory is left as ``curate run`` leaves it (status ``interrupted``, finished
  shards kept), and calling :func:`run` again resumes it.
- **Signals**: while :func:`run` runs, SIGINT (and SIGTERM and SIGHUP where nothing else handles
  them) get ``curate run``'s handler, which also stops DuckDB's queries at once; the handlers found
  are put back when it returns, however it ends. Called from another thread than the main one
  (a thread pool of an orchestrator), it installs none: Python lets only the main thread.
- **Warnings** go through Python's ``warnings`` module and ``logging`` under your filters and
  handlers, unchanged (the command resets the filters and formats them as one line); those shown
  are also listed in :attr:`Run.warnings`.
- **Output**: nothing on stdout; progress bars on stderr only with ``quiet=False``. Notes a run
  says on the way (a lock taken over, a resumed spec run as untrusted) go to stderr, as with
  ``curate run --quiet``.
- **Locale**: ``curate`` runs itself again in Python's UTF-8 mode under a pure ASCII locale; a
  process cannot change its own mode, so under such a locale start Python with ``-X utf8``
  (or ``PYTHONUTF8=1``) to run specs that name non-ASCII files.

``import curate`` stays cheap: these functions load with their modules on first use.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from curate.errors import Problem
    from curate.runresult import Run
    from curate.specinput import SpecLike

from dataclasses import dataclass, field


def run(spec: SpecLike | None = None, *, run_dir: str | Path | None = None, resume: str | Path | None = None,
        from_step: str | None = None, no_cache: bool = False, retry_failed: bool = False,
        untrusted: bool = False, allow_remote: Iterable[str] = (), wait: bool | float = False,
        quiet: bool = True) -> Run:
    """Run ``spec`` (a spec file's path, its YAML text, or a dict) as ``curate run`` does, and
    return the :class:`Run`. Finished steps and shards are reused, so calling it again resumes a
    run that was stopped or failed.

    ``run_dir``: instead of the spec's ``run.dir`` (``--run-dir``). ``resume``: a run directory
    to continue with the spec saved there, as ``--resume`` (``spec`` may then be left out; a spec
    saved from text or a dict, which no spec file vouches for, runs as untrusted, said on
    stderr). ``from_step``: recompute this step and those after it (``--from``). ``no_cache``:
    recompute everything. ``retry_failed``: download again only what failed transiently.
    ``untrusted`` and ``allow_remote``: ``--untrusted`` and ``--allow-remote``. ``wait``: wait
    for another run holding the run directory or store (True: as long as it takes; a number:
    seconds) instead of raising :class:`curate.RunLockedError`. ``quiet=False`` shows progress
    bars on stderr.

    Raises :class:`curate.SpecError` (every problem of the spec), :class:`curate.RunLockedError`,
    :class:`curate.StepError` and the other :class:`curate.CurateError` subclasses, each with
    ``run_dir`` set, and ``KeyboardInterrupt`` when stopped (module docstring)."""
    from curate.errors import UsageError
    from curate.runner import RunOptions

    if spec is None and resume is None:
        raise UsageError("curate.run needs a spec (or resume=RUN_DIR)", "e.g. curate.run('specs/quickstart.yaml')")
    options = RunOptions(run_dir=run_dir, resume_dir=resume, from_label=from_step, no_cache=no_cache,
                         untrusted=untrusted, allow_remote=_remote_prefixes(allow_remote),
                         wait=None if wait is True else float(wait or 0), retry_failed=retry_failed)
    return _Call(options, quiet).run(spec)


def validate(spec: SpecLike, *, run_dir: str | Path | None = None, untrusted: bool = False,
             allow_remote: Iterable[str] = ()) -> list[Problem]:
    """Every problem ``curate validate`` finds in ``spec`` and the run directory it would use,
    each a :class:`curate.Problem` (``path``, ``message``, ``hint``, ``line``, ``file``;
    ``as_json()`` is the entry of ``curate validate --json``'s ``errors``); [] when there is none.
    Nothing of the spec runs: SQL is parsed and bound to an empty table, the run directory only
    looked at. What would stop a run now though the spec is fine (another run holds the run
    directory) is a :class:`curate.PreflightWarning`. A spec from someone else: ``untrusted=True``."""
    import warnings

    from curate.errors import CurateError, problems_of
    from curate.preflight import PreflightWarning
    from curate.runner import load_and_plan, preflight
    from curate.specinput import load_spec_like

    try:
        plan, _ = load_and_plan(load_spec_like(spec), run_dir, untrusted, _remote_prefixes(allow_remote))
        found = preflight(plan)
    except CurateError as exc:
        return problems_of(exc)
    for warning in found:
        warnings.warn(warning, PreflightWarning, stacklevel=2)
    return []


@dataclass(frozen=True)
class PlannedStepInfo:
    """One step of a plan, as ``curate plan --json`` lists it: the columns it reads, writes
    (name: type) and removes, its fingerprint (its store folder), whether it is stored already
    (``cached``), and the labels of the fused group it runs in ([] alone)."""

    index: int
    label: str
    step: str
    reads: dict[str, str]
    writes: dict[str, str]
    removes: list[str]
    fingerprint: str
    cached: bool
    fused: list[str]


@dataclass(frozen=True)
class SpecPlan:
    """What :func:`plan_spec` found: where the run would go, what runs it, and its steps."""

    run_dir: Path
    spec_hash: str
    executor: str | None
    steps: list[PlannedStepInfo]
    outputs: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """What ``curate plan --json`` prints."""
        import dataclasses

        return {"run_dir": str(self.run_dir), "executor": self.executor,
                "steps": [dataclasses.asdict(step) for step in self.steps]}


def plan_spec(spec: SpecLike, *, run_dir: str | Path | None = None, untrusted: bool = False,
              allow_remote: Iterable[str] = ()) -> SpecPlan:
    """The plan of ``spec`` as ``curate plan`` shows it, running nothing: raises
    :class:`curate.SpecError` with every problem, as :func:`run` would. (Not ``curate.plan``:
    that name is curate's planning module.)"""
    from curate.plan import plan_facts
    from curate.runner import load_and_plan
    from curate.specinput import load_spec_like

    the_plan, _ = load_and_plan(load_spec_like(spec), run_dir, untrusted, _remote_prefixes(allow_remote))
    facts = plan_facts(the_plan)
    outputs = [{"index": o.index, "format": o.sink.format, "step": o.step_label, "path": o.path}
               for o in the_plan.outputs]
    return SpecPlan(the_plan.run_dir, the_plan.spec.hash(), facts["executor"],
                    [PlannedStepInfo(**row) for row in facts["steps"]], outputs)


def open_run(run_dir: str | Path) -> Run:
    """The run in ``run_dir`` (a folder ``curate run`` or :func:`run` wrote), to read: raises
    :class:`curate.UsageError` where there is none, :class:`curate.RunDirError` where its manifest
    is damaged."""
    from curate.runresult import Run

    return Run(run_dir)


def _remote_prefixes(values: Iterable[str]) -> tuple[str, ...]:
    """``allow_remote``, checked as ``--allow-remote`` checks it: storage URL prefixes."""
    from curate.errors import UsageError
    from curate.remote import is_url

    prefixes = (values,) if isinstance(values, str) else tuple(values)
    for value in prefixes:
        if not is_url(value):
            raise UsageError(f"allow_remote: {value!r} is not a storage URL",
                             "give a prefix such as s3://bucket/shared")
    return prefixes


class _Call:
    """One :func:`run` call: what ``curate run`` does around the engine, in this process."""

    def __init__(self, options: Any, quiet: bool):
        self.options = options
        self.quiet = quiet
        self.plan: Any = None
        self.engine: Any = None

    def run(self, spec: Any) -> Run:
        from curate import stopping
        from curate.display import rich_console
        from curate.runresult import Run
        from curate.warnrecord import record_warnings

        console = rich_console(stderr=True)
        shown: list[str] = []
        stop_recording = record_warnings(shown)
        try:
            with stopping.handling():
                try:
                    manifest = self._run(spec, console)
                except BaseException as exc:  # noqa: BLE001 - each said as curate says it, or raised as it is
                    raised = self._as_raised(exc)
                    if raised is exc:
                        raise
                    raise raised from exc
        finally:
            stop_recording()
        return Run(self.plan.run_dir, manifest, shown)

    def _run(self, spec: Any, console: Any) -> dict[str, Any]:
        from curate.engine import Engine
        from curate.runner import execute, plan_run, refuse_before_run, spec_to_run
        from curate.specinput import load_spec_like

        to_run = spec_to_run(load_spec_like(spec) if spec is not None else None, self.options, console)
        self.plan, pm = plan_run(to_run, self.options)
        refuse_before_run(self.plan, self.options)
        observer = None
        if not self.quiet:
            from curate.progress import RichObserver

            observer = RichObserver(console)
        self.engine = Engine(self.plan, pm, observer)
        try:
            return execute(self.engine, self.options)
        finally:
            if observer is not None:
                observer.close()

    def _as_raised(self, exc: BaseException) -> BaseException:
        """``exc`` as this call raises it: a stop as the KeyboardInterrupt it is (DuckDB's "Query
        interrupted" after a signal included); a full disk, a quota or a read-only run directory
        as the CurateError ``curate`` says it with; each with ``run_dir``."""
        from curate import stopping
        from curate.errors import CurateError, ResourceError, reported, unusable_path

        raised: BaseException = stopping.as_stop(exc) or exc
        if not isinstance(raised, (CurateError, KeyboardInterrupt)) and reported(raised):
            raised = ResourceError.from_exception(raised) or unusable_path(raised) or raised
        if not isinstance(raised, (CurateError, KeyboardInterrupt)):
            return raised  # a bug: as it is, traceback and all
        run_dir = self._run_dir()
        raised.run_dir = run_dir  # type: ignore[union-attr]
        if isinstance(raised, KeyboardInterrupt):
            raised.add_note(self._resume_note(raised, run_dir))
        elif run_dir is not None and self.engine is not None and self.engine.manifest is not None:
            raised.add_note(f"the run directory is {run_dir}: curate.open_run({str(run_dir)!r}) reads the steps "
                            "that finished, and calling curate.run again resumes it")
        return raised

    def _run_dir(self) -> Path | None:
        if self.plan is not None:
            return self.plan.run_dir
        target = self.options.target
        return Path(target).expanduser().resolve() if target is not None else None

    def _resume_note(self, stop: KeyboardInterrupt, run_dir: Path | None) -> str:
        from curate.errors import stop_words

        words = stop_words(stop)
        if getattr(stop, "after_complete", False):
            return (f"{words} while reporting on the run in {run_dir}, which had completed (its outputs are "
                    "written); call curate.run again to write its report")
        if run_dir is None or self.engine is None or self.engine.manifest is None:
            return f"{words} before the run started"
        options = self.options
        if getattr(stop, "curate_resume", None):  # --no-cache or --from: the same call would recompute
            flag = "no_cache=True" if options.no_cache else f"from_step={options.from_label!r}"
            return (f"{words}; the run in {run_dir} is kept: call curate.run again without {flag} to resume it "
                    f"(with it, the call would recompute what this run finished)")
        return f"{words}; the run in {run_dir} is kept: call curate.run again to resume it"
