"""``curate inspect``: a run's funnel, status and outputs, and whether its stored files are as stored."""

from __future__ import annotations

import json
from pathlib import Path

import click

from curate.commands.funnel import _print_funnel
from curate.commands.shared import _console
from curate.display import for_rich


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True,
              help="Print the manifest as JSON, with \"damaged\": the stored files' check "
                   "([{\"step\", \"problem\"}], read whole with --verify, which exits non-zero on damage), "
                   "\"lock_held\" (a live process holds the run directory now) and \"state\": \"status\", "
                   "but \"stopped\" where that says \"running\" and no process holds the run (killed).")
@click.option("--verify", is_flag=True,
              help="Check every stored file's fingerprint (reads them all), not only that it is there.")
def inspect(run_dir: str, as_json: bool, verify: bool) -> None:
    """Show a run's funnel: rows per step, drop reasons, timings; and which stored files are gone."""
    from curate.runfacts import run_facts

    facts = run_facts(Path(run_dir), verify)
    manifest, damaged = facts.manifest, facts.damaged
    if as_json:
        click.echo(json.dumps(facts.as_json(), indent=2))
        _refuse_damaged(run_dir, verify, damaged, "the JSON's \"damaged\" lists them")
        return
    console = _console()
    _print_funnel(manifest, console)
    status = manifest.get("status")
    if facts.state == "stopped":
        status = "stopped: no process runs it now (killed, or its machine went down); run it again to resume"
    console.print(for_rich(f"spec hash {manifest.get('spec_hash')}, started {manifest.get('started_at')}, "
                           f"status {status}"))
    if where := manifest.get("executor_where") or manifest.get("executor"):  # older runs: the name
        console.print(for_rich(f"executor: {where}"))
    if manifest.get("error") and manifest.get("status") != "complete":
        # a line at a time, its hint on a line of its own (made visible whole, it showed \x0a); the
        # lines after the first indented, so none looks like one of inspect's own
        first, *rest = f"error: {manifest['error']}".splitlines()
        for line in [first, *(f"  {line}" for line in rest)]:
            console.print(for_rich(line))
    if manifest.get("views_error"):  # curate.views
        console.print(for_rich(f"its views were not written ({manifest['views_error']}): `curate relocate "
                               f"{run_dir}` writes them"))
    recorded = manifest.get("run_dir")
    if isinstance(recorded, str) and Path(recorded).resolve() != Path(run_dir).resolve():
        console.print(for_rich(f"this run directory was written at {recorded}: the views of its "
                               f"curate.duckdb still read the files there; `curate relocate {run_dir}` "
                               f"points them here"))
    for output in manifest.get("outputs", []):
        console.print(f"output: {for_rich(output['format'])} → {for_rich(output['path'])}")
    if damaged:
        for label, problem in damaged:
            console.print(for_rich(f"step '{label}' is not as it was stored: {problem}"))
        console.print(for_rich(f"the run directory's views read these files and fail; `curate run --resume "
                               f"{run_dir}` recomputes what is missing"))
    for output in manifest.get("stale_outputs", []):  # curate.staleoutputs
        run = output["written_by"]
        console.print(for_rich(f"stale output: {output['path']} holds the rows of an earlier run (started "
                               f"{run.get('started_at')}, spec hash {str(run.get('spec_hash'))[:12]}), "
                               f"not this spec's"))
    _refuse_damaged(run_dir, verify, damaged, "above")


def _refuse_damaged(run_dir: str, verify: bool, damaged: list[tuple[str, str]], listed: str) -> None:
    """``inspect --verify`` (text or JSON) found damage: scripts read its answer from the exit code."""
    if verify and damaged:
        from curate.errors import StoredFilesChanged

        steps = f"{len(damaged)} finished step{'s' if len(damaged) > 1 else ''}"
        many = len(damaged) > 1
        raise StoredFilesChanged(f"{steps} of {run_dir} {'are' if many else 'is'} not as stored ({listed})",
                                 f"curate run --resume {run_dir} recomputes {'them' if many else 'it'}")
