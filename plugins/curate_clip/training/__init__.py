"""Reproducible training of the world CLIP with the real client, ``open_clip_train``."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def run_command(command: Any, argv: list[str] | None, prog_name: str) -> int:
    """Run a click ``command`` on ``argv`` (default: the process's) and return its exit code; the
    arguments reach the command (see :func:`invoked_args`) to be recorded in its training.json."""
    return int(command.main(args=argv, prog_name=prog_name, standalone_mode=False,
                            obj={"argv": argv} if argv is not None else None) or 0)


def invoked_args(ctx: Any, name: str) -> list[str]:
    """The arguments the command was given: :func:`run_command`'s ``argv``, else the process's after
    the sub-command ``name`` (``curate clip NAME ...``), else all of them (``python -m ...``)."""
    if isinstance(ctx.obj, dict) and ctx.obj.get("argv") is not None:
        return list(ctx.obj["argv"])
    return sys.argv[sys.argv.index(name) + 1:] if name in sys.argv else sys.argv[1:]


def namespace(ctx: Any, options: dict[str, Any]) -> argparse.Namespace:
    """A click command's options as the argparse namespace the training code takes, in the order
    they are declared (the order argparse kept, and training.json records)."""
    return argparse.Namespace(**{param.name: options[param.name] for param in ctx.command.params if param.name})


def click_help(doc: str | None) -> str:
    """A module docstring as a command's help: indented paragraphs (command examples) are kept as
    written instead of re-wrapped (click's ``\\b`` marker)."""
    paragraphs = (doc or "").strip("\n").split("\n\n")
    return "\n\n".join("\b\n" + p if p.startswith("    ") else p for p in paragraphs)
