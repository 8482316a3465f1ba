"""``curate dedup train-copy-world``."""

from __future__ import annotations

import sys

import click


@click.group()
def dedup() -> None:
    """Deduplication tools: train the world copy detector that copy_embed ships with."""


@dedup.command("train-copy-world", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train_copy_world(args: tuple[str, ...]) -> None:
    """Train a copy-detection CNN on scenes drawn from the world (see --help)."""
    from curate_dedup.copydetect.train import main

    sys.exit(main(list(args)))
