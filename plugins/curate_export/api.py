"""curate_export's public surface: the only names other plugins may import from curate_export.

Specs reach the sinks by their ``format`` (``webdataset``, ``imagefolder``); code that writes a
table without a run (the blend experiment of curate_train) uses the sink class. Everything else in
the package is private to it; ``tests/test_plugin_layering.py`` checks. Each name is the defining
module's own object, imported on first use.

``WebDatasetSink``
    ``NNNNN.tar`` shards of ``<key>.jpg``, ``<key>.txt`` (the caption) and ``<key>.json``.
"""

from __future__ import annotations

from curate.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "curate_export.sinks": ("WebDatasetSink",),
})
