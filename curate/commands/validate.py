"""``curate validate``: check a spec and the run directory it would use, running nothing."""

from __future__ import annotations

import click

from curate import jsonsummary
from curate.commands.shared import (
    UNTRUSTED_HELP,
    _console,
    _json_option,
    _load_and_plan,
    _spec_shown,
    allow_remote_option,
)
from curate.display import for_rich, visible


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--run-dir", type=click.Path(file_okay=False), help="Override run.dir from the spec.")
@click.option("--untrusted", is_flag=True, help=UNTRUSTED_HELP)
@allow_remote_option
@_json_option("validate", "Print only a JSON object on stdout: {\"ok\", \"exit_code\", \"spec\", "
              "\"run_dir\", \"errors\": [{\"where\", \"line\", \"file\", \"message\", \"hint\"}], "
              "\"warnings\"} (exit codes as without it).")
def validate(spec: str, run_dir: str | None, untrusted: bool, allow_remote: tuple[str, ...],
             as_json: bool) -> None:
    """Check a spec: structure, plugin names, params, columns, and the run directory as the run
    would find it. Exit 2 listing every problem. A run directory or store that another run holds
    now, or that this user cannot write, is a warning (exit 0): `curate run` would refuse it.

    Nothing of the spec runs: SQL is parsed and bound to an empty table, never executed; the run
    directory is only looked at, never created or changed.

    SPEC - reads the spec from stdin; its relative paths then resolve against the working
    directory (as run.dir and --run-dir always do)."""
    answer = jsonsummary.started()
    if answer is not None:
        answer.spec = _spec_shown(spec)
    plan, _ = _load_and_plan(spec, run_dir, untrusted=untrusted, allow_remote=allow_remote)
    if answer is not None:
        answer.run_dir = str(plan.run_dir)
    from curate.runner import preflight

    # what `curate run` refuses before it starts, said here first; what would stop it now, as a warning
    for warning in preflight(plan):
        click.echo(f"curate: warning: {visible(warning, lines=True)}", err=True)
        if answer is not None:
            answer.warnings.append(warning)
    if as_json:
        return  # the answer is printed once the exit code is known (main)
    steps = len(plan.steps) - 1
    _console().print(f"[green]ok[/green] {for_rich(spec)}: source '{for_rich(plan.source.format)}', "
                     f"{steps} step{'s' if steps != 1 else ''}, "
                     f"{len(plan.outputs)} output{'s' if len(plan.outputs) != 1 else ''}")
