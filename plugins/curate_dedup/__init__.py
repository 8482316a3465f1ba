"""Deduplication and decontamination: exact (image bytes, normalized text), semantic (CLIP
embeddings with faiss: k-NN graph or SemDeDup clusters) and eval-set decontamination.

faiss is imported inside functions only: ``import curate`` and ``curate --help`` never load it.
"""

from __future__ import annotations

from curate import hookimpl

__version__ = "0.1.0"


@hookimpl
def curate_register_steps():
    from curate_dedup.decontaminate import Decontaminate
    from curate_dedup.exact import DedupExact
    from curate_dedup.semantic import DedupSemantic

    return [DedupExact, DedupSemantic, Decontaminate]
