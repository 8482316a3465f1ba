"""``curate relocate``: point a moved run directory's manifest and views at where it now lies."""

from __future__ import annotations

from pathlib import Path

import click

from curate.commands.shared import _console
from curate.display import for_rich


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--store", type=click.Path(file_okay=False), default=None,
              help="Where the run's store is now, when it was outside the run directory.")
def relocate(run_dir: str, store: str | None) -> None:
    """Point a moved, copied or unpacked run directory's manifest and views at where it now lies."""
    from curate.relocate import relocate as relocate_run
    from curate.storecheck import stored_problems

    manifest, changed = relocate_run(Path(run_dir), Path(store) if store else None)
    console = _console()
    for change in changed or ["nothing had moved; the views are written again"]:
        console.print(for_rich(change))
    for label, problem in stored_problems(manifest):
        console.print(for_rich(f"step '{label}' is not as it was stored: {problem}"))
    console.print(for_rich(f"views: {Path(run_dir) / 'curate.duckdb'}"))
