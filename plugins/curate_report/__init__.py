"""Built-in plugin: the run report, one self-contained HTML page per run.

``curate report RUN`` writes it on demand; a run whose spec keeps ``run.report: true`` (the
default) gets ``RUN_DIR/report.html`` when it finishes. Sections come from the
``curate_report_sections`` hook, which the built-in sections implement like any plugin would.
Nothing heavy is imported here: ``curate --help`` loads every plugin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate import hookimpl

__version__ = "0.1.0"


@hookimpl
def curate_register_commands(cli: Any) -> None:
    from curate_report.command import report

    cli.add_command(report)


@hookimpl
def curate_report_sections(run_dir: Path, manifest: dict[str, Any], image_dirs: tuple[Path, ...]
                           ) -> list[dict[str, Any]]:
    from curate_report.sections import build_all

    return build_all(run_dir, manifest, image_dirs)


@hookimpl
def curate_run_finished(run_dir: Path, manifest: dict[str, Any]) -> None:
    from curate_report.command import report_after_run

    report_after_run(Path(run_dir), manifest)
