"""curate_mix's public surface: the only names other plugins may import from curate_mix.

A plugin that adds a mixing strategy (the ``curate_mix_strategies`` hook, docs/plugin_hooks.md)
subclasses ``MixStrategy`` and may use ``choose``; a plugin that drives the ``mix`` step from code
names its candidate columns with ``MixColumns``. Everything else in the package is private to it;
``tests/test_plugin_layering.py`` checks. Each name is the defining module's own object, imported
on first use.

``MixStrategy``
    Base class of strategies: set ``name`` and ``Params``, implement ``mix(frame)``.
``choose(frame, want_synthetic)``
    The synthetic caption where wanted and present, else the original (a fallback if wanted).
``MixColumns``
    Which columns hold the candidates and their scores, as named in the mix step's params.
"""

from __future__ import annotations

from curate.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "curate_mix.strategies": ("MixStrategy", "choose", "MixColumns"),
})
