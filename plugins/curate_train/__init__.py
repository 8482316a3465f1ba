"""Training on exported data: ``curate train clip`` (open_clip_train on WebDataset shards),
``curate train eval`` (zero-shot and retrieval on a world's eval split), and the blend experiment
(``curate experiment run``). Heavy libraries are imported inside the commands."""

from __future__ import annotations

from curate import hookimpl

__version__ = "0.1.0"


@hookimpl
def curate_register_commands(cli):
    from curate_train.cli import add_commands

    add_commands(cli)
