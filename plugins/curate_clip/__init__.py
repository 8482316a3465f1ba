"""Built-in plugin: CLIP scoring and filtering with open_clip, and the world CLIP it ships.

torch and open_clip are imported only when a step runs, never when curate starts.
"""

from __future__ import annotations

from curate import hookimpl

__version__ = "0.1.0"


@hookimpl
def curate_add_hookspecs(pluginmanager):
    from curate_clip import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def curate_register_steps():
    from curate_clip.filter import ClipFilter
    from curate_clip.score import ClipScore

    return [ClipScore, ClipFilter]


@hookimpl
def curate_register_commands(cli):
    from curate_clip.cli import clip

    cli.add_command(clip)
