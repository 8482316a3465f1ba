"""The hook the ``mix`` plugin adds to curate (through ``curate_add_hookspecs``): other plugins
implement it with ``curate.hookimpl`` exactly like a core hook."""

from __future__ import annotations

from typing import TYPE_CHECKING

from curate.hookspecs import hookspec

if TYPE_CHECKING:
    from curate_mix.strategies import MixStrategy


@hookspec
def curate_mix_strategies() -> list[type[MixStrategy]]:
    """Caption mixing strategies for the ``mix`` step (``params.strategy`` values), such as an LLM
    fusion of alt-text and synthetic caption. Results of all plugins are concatenated; a strategy
    name provided twice is an error."""
