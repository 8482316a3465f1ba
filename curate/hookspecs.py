"""Every extension point of curate. Hooks are called with keywords; an implementation may accept a
subset of the arguments, so hooks can grow without breaking plugins.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from curate.executor import Executor
    from curate.sink import Sink
    from curate.source import Source
    from curate.step import Step

hookspec = pluggy.HookspecMarker("curate")
hookimpl = pluggy.HookimplMarker("curate")


@hookspec(historic=True)
def curate_add_hookspecs(pluginmanager: pluggy.PluginManager) -> None:
    """Called once for each plugin as it is registered, so a plugin can add hooks of its own with
    ``pluginmanager.add_hookspecs(module)`` (as ``curate_mix`` adds ``curate_mix_strategies``).
    Return value ignored."""


@hookspec
def curate_register_steps() -> list[type[Step]]:
    """Step classes this plugin provides. Results of all plugins are concatenated; a step name
    claimed by two plugins is an error naming both."""


@hookspec
def curate_register_sources() -> list[type[Source]]:
    """Source classes (``source.format`` values). Results of all plugins are concatenated."""


@hookspec
def curate_register_sinks() -> list[type[Sink]]:
    """Sink classes (``outputs[].format`` values). Results of all plugins are concatenated."""


@hookspec
def curate_register_executors() -> list[type[Executor]]:
    """Executor classes (``run.executor`` values). Results of all plugins are concatenated."""


@hookspec
def curate_register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``curate`` CLI. Import heavy libraries inside the command, never at
    module level: ``curate --help`` loads every plugin."""


@hookspec
def curate_run_started(run_dir: Path, spec: Any) -> None:
    """Called once before the first step runs. Return value ignored."""


@hookspec
def curate_step_finished(run_dir: Path, record: dict[str, Any]) -> None:
    """Called after each step with its manifest record (rows in/out, drops, timing, cached)."""


@hookspec
def curate_run_finished(run_dir: Path, manifest: dict[str, Any]) -> None:
    """Called once after a successful run, with the final manifest (reports hook in here)."""


@hookspec
def curate_report_sections(run_dir: Path, manifest: dict[str, Any], image_dirs: tuple[Path, ...]
                           ) -> list[dict[str, Any]]:
    """Sections for the run report. Each is ``{"title": str, "html": str, "order": int}``
    (self-contained HTML: inline images as data URIs, no external scripts). Results of all
    plugins are concatenated and sorted by ``order``. ``image_dirs``: the only folders a section
    may embed images or read row files from (the run directory and those the user allowed, links
    resolved): pass them to :mod:`curate.images` as ``within=`` (and to the report's ``RunData``),
    since a run from elsewhere names its own files."""
