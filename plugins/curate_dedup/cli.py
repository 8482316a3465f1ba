"""``curate dedup train-copy-world``."""

from __future__ import annotations

import click
from curate_dedup.copydetect.train import command as train_copy_world


@click.group()
def dedup() -> None:
    """Deduplication tools: train the world copy detector that copy_embed ships with."""


dedup.add_command(train_copy_world, "train-copy-world")
