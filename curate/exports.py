"""A plugin's public surface: the names other plugins may import, loaded on first use.

A plugin that others build on publishes them in one module, ``<plugin>/api.py`` (CONTRIBUTING.md,
"Layering"); everything else in the plugin is private to it, and ``tests/test_plugin_layering.py``
holds every plugin to that. The ``api`` module lists each name under the module that defines it and
imports it only when it is first used (PEP 562), so importing an ``api`` module costs nothing: a
name that needs torch loads torch when it is used, as a direct import of its module would, and two
plugins' ``api`` modules never form an import cycle.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

from curate.errors import PluginError


def lazy_exports(
    api_module: str, exports: Mapping[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for the module named ``api_module``, which publishes
    ``exports``: {defining module: names}. A name is imported from its module on first access and
    then kept in the ``api`` module's namespace; the object is the defining module's own."""
    where: dict[str, str] = {}
    for module, names in exports.items():
        for name in names:
            if name in where:
                raise PluginError(f"{api_module} publishes {name!r} twice (from {where[name]} and {module})",
                                  "list each public name under one module")
            where[name] = module
    public = sorted(where)

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {api_module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[api_module], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*public, *vars(sys.modules[api_module])})

    return public, __getattr__, __dir__
