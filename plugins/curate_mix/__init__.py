"""Caption mixing: the ``mix`` step and its strategies (``curate_mix_strategies`` hook)."""

from __future__ import annotations

from curate import hookimpl

__version__ = "0.1.1"


@hookimpl
def curate_add_hookspecs(pluginmanager):
    from curate_mix import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def curate_register_steps():
    from curate_mix.step import Mix

    return [Mix]


@hookimpl
def curate_mix_strategies():
    from curate_mix.strategies import BUILTIN

    return list(BUILTIN)
