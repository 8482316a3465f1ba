"""``curate train clip|eval`` and ``curate experiment run``; heavy imports stay inside the commands."""

from __future__ import annotations

from typing import Any


def add_commands(cli: Any) -> None:
    import click

    @cli.group()
    def train() -> None:
        """Train models on exported data (open_clip_train) and evaluate them on a world's eval split."""
