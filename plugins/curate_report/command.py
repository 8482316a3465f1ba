"""``curate report RUN``, and the report written when a run finishes."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import click

from curate.display import echo


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="Where to write the page (default RUN_DIR/report.html).")
@click.option("--read-from", "--images-from", "read_from", multiple=True, metavar="DIR",
              type=click.Path(exists=True, file_okay=False),
              help="Also read steps' rows and images whose files lie in DIR (repeatable; --images-from is its "
                   "old name). By default only those inside RUN_DIR are: a run from elsewhere must not put "
                   "other files of yours into the page.")
def report(run_dir: str, out: str | None, read_from: tuple[str, ...]) -> None:
    """Write a run's report: one HTML file with the funnel, distributions, duplicates and samples."""
    from curate_report.page import write_report

    started = time.perf_counter()
    path = write_report(Path(run_dir), out, read_from=read_from)
    size = path.stat().st_size
    echo(f"wrote {path} ({size / 1e6:.2f} MB in {time.perf_counter() - started:.1f} s)")


def report_wanted(run_dir: Path, manifest: dict[str, Any]) -> bool:
    """``run.report`` from the spec saved in the run (default true), else the manifest's ``report``."""
    import yaml

    spec = run_dir / "spec.yaml"
    if spec.is_file():
        # libyaml where built in (7x faster): the engine wrote this file with yaml.safe_dump.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(spec.read_text(encoding="utf-8"), Loader=loader) or {}  # noqa: S506 - a safe loader
        run = data.get("run") if isinstance(data, dict) else None
        if isinstance(run, dict) and "report" in run:
            return bool(run["report"])
        return True
    return bool(manifest.get("report", True))


def report_after_run(run_dir: Path, manifest: dict[str, Any]) -> Path | None:
    """The run succeeded whatever happens here: a report that cannot be rendered is a warning."""
    try:
        if not report_wanted(run_dir, manifest):
            return None
        from curate_report.page import write_report

        # The report a run writes about itself reads its steps' rows and the images they name
        # wherever they lie: the run has just written or read them itself (its store, maybe under
        # run.cache_dir; a world's or an experiment's image folder), so the page discloses nothing
        # the spec did not already read. This manifest is the engine's, not a file.
        # `curate report RUN` confines both (curate_report.leftout).
        return write_report(run_dir, manifest=manifest, read_from=[Path(os.sep)])
    except Exception as exc:  # noqa: BLE001 - any failure here must leave the run successful
        from curate_report.sections import ReportWarning

        warnings.warn(f"the run finished, but its report could not be written: {type(exc).__name__}: {exc} "
                      f"(try: curate --debug report {run_dir})", ReportWarning, stacklevel=2)
        return None
