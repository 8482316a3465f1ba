"""The built-in sections. Each module has ``build(data) -> section | None`` and an ``ORDER``;
a section whose data the run lacks returns ``None`` and is left out of the page."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from curate_report.html import esc
from curate_report.rundata import RunData


class ReportWarning(UserWarning):
    """Part of a report could not be rendered; the rest of it, and the run, go on."""


def builders() -> list[Any]:
    from curate_report.sections import captions, distributions, duplicates, experiments, funnel

    return [funnel, distributions, duplicates, captions, experiments]


def build_all(run_dir: Path, manifest: dict[str, Any], image_dirs: tuple[Path, ...] | None = None
              ) -> list[dict[str, Any]]:
    sections = []
    with RunData(run_dir, manifest, image_dirs) as data:
        for module in builders():
            name = module.__name__.rsplit(".", 1)[-1]
            try:
                section = module.build(data)
            except Exception as exc:  # noqa: BLE001 - one broken section must not cost the whole report
                warnings.warn(f"report section '{name}' failed: {type(exc).__name__}: {exc}", ReportWarning,
                              stacklevel=2)
                section = failed_section(name, exc, module.ORDER)
            if section is not None:
                sections.append(section)
        if data.images_outside or data.rows_outside:
            from curate_report.leftout import folders_to_allow, left_out_section

            folders = folders_to_allow([*data.rows_outside.values(), *data.images_outside.values()], data.store_dir)
            sections.append(left_out_section(len(data.images_outside), list(data.rows_outside), data.run_dir,
                                             folders))
    return sections


def failed_section(name: str, exc: BaseException, order: int) -> dict[str, Any]:
    return {"title": name.replace("_", " ").capitalize(), "order": order,
            "html": f"<p class='note bad'>This section could not be rendered: {esc(type(exc).__name__)}: "
                    f"{esc(exc)}</p>"}
