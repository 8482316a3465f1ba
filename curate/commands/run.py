"""``curate run``: run a spec (or resume a run directory with the spec saved there) and print its funnel.
What it does around the engine is :mod:`curate.runner`'s, shared with :func:`curate.run`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from curate import jsonsummary
from curate.commands.funnel import _print_funnel
from curate.commands.shared import UNTRUSTED_HELP, _console, _json_option, _spec_shown, allow_remote_option
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
    from curate.runner import RunOptions, execute, plan_run, refuse_before_run, spec_to_run

    console = _console(stderr=True)
    answer = jsonsummary.started()
    options = RunOptions(run_dir=run_dir, resume_dir=resume_dir, from_label=from_label, no_cache=no_cache,
                         untrusted=untrusted, allow_remote=allow_remote, wait=None if wait else 0,
                         retry_failed=retry_failed)
    if answer is not None:
        answer.spec = _spec_shown(spec)
        answer.run_dir = str(Path(run_dir or resume_dir).absolute()) if run_dir or resume_dir else None
    to_run: Any = spec_to_run(spec, options, console)
    if answer is not None and spec is None:
        answer.spec = str((Path(resume_dir) / "spec.yaml").absolute())
    the_plan, pm = plan_run(to_run, options)
    if answer is not None:
        answer.run_dir = str(the_plan.run_dir)
    refuse_before_run(the_plan, options)
    observer = None
    if not quiet:  # rich's progress module is ~10 ms of imports that --quiet never uses
        from curate.progress import RichObserver

        observer = RichObserver(console)
    engine = Engine(the_plan, pm, observer)
    try:
        manifest = execute(engine, options)
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
