"""``curate run``: run a spec (or resume a run directory with the spec saved there) and print its funnel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from curate import jsonsummary
from curate.commands.funnel import _print_funnel
from curate.commands.resume import _saved_spec
from curate.commands.shared import (
    UNTRUSTED_HELP,
    _console,
    _json_option,
    _load_and_plan,
    _spec_shown,
    allow_remote_option,
)
from curate.display import for_rich


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False), required=False)
@click.option("--run-dir", type=click.Path(file_okay=False), help="Override run.dir from the spec.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="Resume the run in this directory with the spec saved there.")
@click.option("--from", "from_label", help="Recompute this step and every step after it.")
@click.option("--no-cache", is_flag=True, help="Recompute every step.")
@click.option("--quiet", is_flag=True,
              help="Only warnings and errors: no progress bars, no funnel table, no 'wrote' lines.")
@click.option("--untrusted", is_flag=True, help=UNTRUSTED_HELP)
@allow_remote_option
@click.option("--wait", is_flag=True,
              help="If another run holds the run directory or store, wait for it instead of refusing.")
@click.option("--retry-failed", is_flag=True,
              help="Download again only the rows whose download failed transiently (timeouts, 429, 5xx, "
                   "connection errors); every other row stays as it was.")
@_json_option("run", "Print only a JSON object on stdout at the end, however the run ends (complete, "
              "failed, interrupted, refused): status, exit_code, run_dir, spec, steps, outputs, warnings, "
              "error. Progress and warnings stay on stderr; the funnel table is not printed.")
def run(spec: str | None, run_dir: str | None, resume_dir: str | None, from_label: str | None,
        no_cache: bool, quiet: bool, untrusted: bool, allow_remote: tuple[str, ...], wait: bool,
        retry_failed: bool, as_json: bool) -> None:
    """Run a spec. Finished steps and shards are reused, so re-running resumes a broken run.

    SPEC - reads the spec from stdin; its relative paths then resolve against the working
    directory (as run.dir and --run-dir always do). The run directory keeps it as spec.yaml."""
    from curate.engine import Engine
    from curate.errors import UsageError

    console = _console(stderr=True)
    answer = jsonsummary.started()
    to_run: Any = spec
    if answer is not None:
        answer.spec = _spec_shown(spec)
        answer.run_dir = str(Path(run_dir or resume_dir).absolute()) if run_dir or resume_dir else None
    if resume_dir is not None:
        if spec is None:
            to_run = _saved_spec(Path(resume_dir), console, untrusted)
            if answer is not None:
                answer.spec = str((Path(resume_dir) / "spec.yaml").absolute())
        run_dir = resume_dir
    if to_run is None:
        raise UsageError("curate run needs a SPEC (or --resume RUN_DIR)",
                         "e.g. curate run specs/quickstart.yaml")
    the_plan, pm = _load_and_plan(to_run, run_dir, untrusted, allow_remote)
    if answer is not None:
        answer.run_dir = str(the_plan.run_dir)
    if the_plan.spec.run.untrusted and resume_dir is None and not no_cache:
        _refuse_shipped_cache(the_plan)
    observer = None
    if not quiet:  # rich's progress module is ~10 ms of imports that --quiet never uses
        from curate.progress import RichObserver

        observer = RichObserver(console)
    engine = Engine(the_plan, pm, observer)
    try:
        manifest = engine.run(from_label=from_label, use_cache=not no_cache, wait=None if wait else 0,
                              retry_failed=retry_failed)
    except KeyboardInterrupt as exc:
        if no_cache or from_label is not None:
            _resume_with(exc, the_plan, "--no-cache" if no_cache else f"--from {from_label}")
        raise
    finally:
        if observer is not None:
            observer.close()
        if answer is not None:
            answer.manifest = engine.manifest
    if quiet or as_json:  # with --json, main prints the answer once the exit code is known
        return
    _print_funnel(manifest, console)
    for output in manifest.get("outputs", []):
        console.print(f"wrote {for_rich(output['format'])} → {for_rich(output['path'])}")
    run_dir_shown = for_rich(the_plan.run_dir)
    console.print(f"run directory: {run_dir_shown}  "
                  f"(DuckDB views: {for_rich(the_plan.run_dir / 'curate.duckdb')})")


def _resume_with(exc: KeyboardInterrupt, the_plan: Any, flag: str) -> None:
    """A run with --no-cache or --from that was stopped: the same command would recompute what
    this one finished, so the hint says how to resume it (read by
    :func:`curate.commands.notices._stopped_by`). Only when the run got as far as saving its spec
    (the manifest is this spec's): --resume reads it."""
    import shlex

    from curate.runfiles import read_json

    try:
        manifest = read_json(the_plan.run_dir / "manifest.json")
    except (OSError, ValueError):
        return
    if manifest.get("spec_hash") != the_plan.spec.hash() or manifest.get("status") != "interrupted":
        return
    resume = f"curate run --resume {shlex.quote(str(the_plan.run_dir))}"
    exc.curate_resume = (  # type: ignore[attr-defined]
        f"run `{resume}` to resume (the same command would recompute with {flag} what this run finished)")


def _refuse_shipped_cache(the_plan: Any) -> None:
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
