"""``curate plan``: the steps a spec would run, the columns each reads and writes, which are cached."""

from __future__ import annotations

import json

import click

from curate.commands.shared import UNTRUSTED_HELP, _console, _load_and_plan, allow_remote_option
from curate.display import for_rich


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--run-dir", type=click.Path(file_okay=False), help="Override run.dir from the spec.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--untrusted", is_flag=True, help=UNTRUSTED_HELP)
@allow_remote_option
def plan(spec: str, run_dir: str | None, as_json: bool, untrusted: bool,
         allow_remote: tuple[str, ...]) -> None:
    """Show the steps, the columns each reads and writes, and which are cached."""
    from rich.table import Table

    from curate.plan import plan_facts

    the_plan, _ = _load_and_plan(spec, run_dir, untrusted, allow_remote)
    facts = plan_facts(the_plan)
    rows, where = facts["steps"], facts["executor"]
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    if where is not None:
        _console().print(f"executor: {for_rich(where)}")
    table = Table(title=f"plan for {for_rich(spec)} → {for_rich(the_plan.run_dir)}")
    for column in ("#", "label", "step", "reads", "writes", "cached"):
        table.add_column(column)
    for row in rows:
        reads = ", ".join(row["reads"]) or "-"
        writes = ", ".join(f"{k}: {v}" for k, v in row["writes"].items()) or "-"
        if row["removes"]:
            writes += " (removes " + ", ".join(row["removes"]) + ")"
        table.add_row(str(row["index"]), *map(for_rich, (row["label"], row["step"], reads, writes)),
                      "[green]yes[/green]" if row["cached"] else "no")
    _console().print(table)
    for group in dict.fromkeys(tuple(row["fused"]) for row in rows if row["fused"]):
        _console().print(f"fused, one pass per shard and one cache unit (only the last stores kept rows): "
                         f"{for_rich(' + '.join(group))}")
    for output in the_plan.outputs:
        _console().print(f"output {output.index}: {for_rich(output.sink.format)} ← "
                         f"{for_rich(output.step_label)} → {for_rich(output.path)}")
