"""curate_report's public surface: the only names other plugins may import from curate_report.

A plugin that adds a report section (the ``curate_report_sections`` hook, docs/plugin_hooks.md)
may build its HTML with these helpers, so it looks like the built-in sections and is escaped the
same way. Everything else in the package is private to it; ``tests/test_plugin_layering.py``
checks. Each name is the defining module's own object, imported on first use.

``Html``
    A string that is already safe markup (anything else is escaped).
``table(headers, rows, numeric=(), class_=None)``
    A table; columns whose index is in ``numeric`` are right-aligned with tabular figures.
``number(value)``
    A number as the report prints it.
``RunData(run_dir, manifest, image_dirs)``
    A run's steps' rows, reading only row files inside ``image_dirs`` (the hook's argument).
"""

from __future__ import annotations

from curate.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "curate_report.html": ("Html", "table", "number"),
    "curate_report.rundata": ("RunData",),
})
