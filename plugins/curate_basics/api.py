"""What other plugins may import from curate_basics (CONTRIBUTING.md, "Layering").

- ``normalize_one(text, params)`` / ``NormalizeParams``: the `normalize_text` step's cleaning of one
  string, so a plugin (e.g. the captioner's training tools) sees alt-texts exactly as a pipeline's
  `normalize_text` hands them on.
"""

from __future__ import annotations

from curate.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "curate_basics.normalize": ("NormalizeParams", "normalize_one"),
})
