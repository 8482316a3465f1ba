"""Deduplication and decontamination: exact (image bytes, normalized text), semantic (CLIP or
copy-detection embeddings with faiss: k-NN graph or SemDeDup clusters), eval-set decontamination,
and ``copy_embed``, the copy-detection descriptors near-duplicate removal works best on.

faiss is imported inside functions only: ``import curate`` and ``curate --help`` never load it.
"""

from __future__ import annotations

from curate import hookimpl

__version__ = "0.1.0"


@hookimpl
def curate_register_steps():
    from curate_dedup.copy_embed import CopyEmbed
    from curate_dedup.decontaminate import Decontaminate
    from curate_dedup.exact import DedupExact
    from curate_dedup.semantic import DedupSemantic

    return [DedupExact, CopyEmbed, DedupSemantic, Decontaminate]


@hookimpl
def curate_register_commands(cli):
    from curate_dedup.cli import dedup

    cli.add_command(dedup)
