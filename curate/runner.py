"""What ``curate run`` and ``curate validate`` do around the engine, shared by the commands and by
the Python API (:func:`curate.run`, :func:`curate.validate`): which spec runs (a file, stdin, spec
data, or the copy saved in a run directory being resumed, with the trust it deserves), planning
it, what a run refuses before it starts, and running it under the run directory's locks.

Printing is the caller's: the command prints a funnel and a JSON answer, the API returns a
:class:`curate.Run`. Notes said on the way (a resumed spec run as untrusted) go to ``console``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class RunOptions:
    """``curate run``'s options (``curate.run``'s keywords), as the engine takes them. ``wait``:
    seconds to wait for another run holding the run directory or store (0: refuse, None: forever)."""

    run_dir: str | Path | None = None
    resume_dir: str | Path | None = None
    from_label: str | None = None
    no_cache: bool = False
    untrusted: bool = False
    allow_remote: tuple[str, ...] = ()
    wait: float | None = 0
    retry_failed: bool = False

    @property
    def target(self) -> str | Path | None:
        """The run directory asked for: the one resumed, else ``--run-dir`` (None: the spec's run.dir)."""
        return self.resume_dir if self.resume_dir is not None else self.run_dir


def load_and_plan(spec: Any, run_dir: str | Path | None = None, untrusted: bool = False,
                  allow_remote: tuple[str, ...] = ()) -> tuple[Any, Any]:
    """Plan ``spec`` (a spec file's path, ``-`` for stdin, or a :class:`curate.spec.LoadedSpec`)
    in ``run_dir``: the plan and the plugin manager, or one SpecError with every problem."""
    from curate.plan import make_plan
    from curate.plugins import get_plugin_manager
    from curate.spec import load_spec
    from curate.stdinspec import STDIN, load_stdin_spec

    if spec == STDIN:
        loaded = load_stdin_spec()
    else:
        loaded = load_spec(spec) if isinstance(spec, (str, Path)) else spec
    if untrusted:
        loaded.spec.run.untrusted = True
    pm = get_plugin_manager()
    return make_plan(loaded, pm, run_dir, allow_remote), pm


def preflight(plan: Any) -> list[str]:
    """What ``curate validate`` checks of the run directory once the spec plans: what ``curate
    run`` refuses before it starts is raised (a RunDirError); what would stop it now (another run
    holds it, this user cannot write it) is returned, a line each, to say as warnings. Only looks."""
    from curate.preflight import run_dir_warnings

    plan.check_layout()
    return run_dir_warnings(plan.run_dir, plan.store_dir)


def spec_to_run(spec: Any, options: RunOptions, console: Any) -> Any:
    """The spec a run runs: ``spec``, or, resuming a run directory without one, the spec saved
    there (``curate.savedspec``: run as untrusted where no spec file of the user's vouches for it,
    said on ``console``)."""
    from curate.errors import UsageError
    from curate.savedspec import saved_spec

    if options.resume_dir is not None and spec is None:
        return saved_spec(Path(options.resume_dir), console, options.untrusted)
    if spec is None:
        raise UsageError("curate run needs a SPEC (or --resume RUN_DIR)", "e.g. curate run specs/quickstart.yaml")
    return spec


def plan_run(spec: Any, options: RunOptions) -> tuple[Any, Any]:
    """Plan ``spec`` (from :func:`spec_to_run`) for a run: the plan and the plugin manager."""
    return load_and_plan(spec, options.target, options.untrusted, options.allow_remote)


def refuse_before_run(the_plan: Any, options: RunOptions) -> None:
    """What a run refuses once planned, before the engine starts: an untrusted spec whose run
    directory already holds steps it did not ask to resume (:func:`refuse_shipped_cache`)."""
    if the_plan.spec.run.untrusted and options.resume_dir is None and not options.no_cache:
        refuse_shipped_cache(the_plan)


def execute(engine: Any, options: RunOptions) -> dict[str, Any]:
    """Run ``engine``'s plan as ``options`` say, under its locks; the manifest. A stop is raised
    as the KeyboardInterrupt it is, with how to resume it where the same call would not
    (:func:`resumable_with`)."""
    try:
        return engine.run(from_label=options.from_label, use_cache=not options.no_cache, wait=options.wait,
                          retry_failed=options.retry_failed)
    except KeyboardInterrupt as exc:
        if (options.no_cache or options.from_label is not None) and stopped_here(engine.plan):
            exc.curate_resume = resumable_with(  # type: ignore[attr-defined]
                engine.plan, "--no-cache" if options.no_cache else f"--from {options.from_label}")
        raise


def stopped_here(the_plan: Any) -> bool:
    """Whether the run of ``the_plan`` that was stopped got as far as saving its spec (its run
    directory's manifest is this spec's, interrupted): resuming it (``--resume``) runs on."""
    from curate.runfiles import read_json

    try:
        manifest = read_json(the_plan.run_dir / "manifest.json")
    except (OSError, ValueError):
        return False
    return manifest.get("spec_hash") == the_plan.spec.hash() and manifest.get("status") == "interrupted"


def resumable_with(the_plan: Any, flag: str) -> str:
    """A run with --no-cache or --from that was stopped: the same command would recompute what
    this one finished, so the hint says how to resume it (read by
    :func:`curate.commands.notices._stopped_by`)."""
    import shlex

    resume = f"curate run --resume {shlex.quote(str(the_plan.run_dir))}"
    return f"run `{resume}` to resume (the same command would recompute with {flag} what this run finished)"


def refuse_shipped_cache(the_plan: Any) -> None:
    """An untrusted spec whose run directory or store already holds finished steps: they may have
    come with the spec, written by its sender (a bundle shipped runs/NAME/store, and the run put
    the sender's rows in the outputs without a word, the markers' checksums being the sender's
    too; security re-probe). Reusing them is said and asked for: --resume."""
    from curate.errors import UsageError

    stored = [planned.label for planned in the_plan.steps if the_plan.step_dir(planned).exists()]
    if stored:
        raise UsageError(
            f"an untrusted spec's run directory {the_plan.run_dir} (or its store) already holds the rows of "
            f"{len(stored)} step{'s' if len(stored) > 1 else ''} ({', '.join(stored[:4])}"
            f"{'…' if len(stored) > 4 else ''}), which may have come with the spec, written by its sender",
            f"compute afresh with --run-dir NEW (or --no-cache), or continue that run knowingly with "
            f"--resume {the_plan.run_dir}")
