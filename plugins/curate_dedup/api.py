"""curate_dedup's public surface: the only names other plugins may import from curate_dedup.

Measuring a dedup run against a generated world
    ``dedup_verdict(run_dir, step)``: the groups the run's ``dedup_semantic`` step wrote, scored as
    pairs against the world's planted near-duplicate groups (``planted``) and against equal scene
    content (``content``): precision, recall and the pair counts they rest on.
"""

from __future__ import annotations

from curate.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "curate_dedup.worldeval": ("dedup_verdict",),
})
