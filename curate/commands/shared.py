"""What several commands share: the plugin manager, the console, planning a spec, and the options
``--untrusted``, ``--allow-remote`` and ``--json`` (the JSON answer of ``run`` and ``validate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from curate import jsonsummary


def _pm():
    from curate.plugins import get_plugin_manager

    return get_plugin_manager()


def _console(stderr: bool = False):
    from curate.display import rich_console

    return rich_console(stderr)


def _load_and_plan(spec_path: str | Any, run_dir: str | None = None, untrusted: bool = False,
                   allow_remote: tuple[str, ...] = ()):
    from curate.runner import load_and_plan

    return load_and_plan(spec_path, run_dir, untrusted, allow_remote)


def _storage_urls(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    from curate.remote import is_url

    for value in values:
        if not is_url(value):
            raise click.BadParameter(
                f"{value!r} is not a storage URL; give a prefix such as s3://bucket/shared", ctx, param)
    return values


UNTRUSTED_HELP = ("The spec comes from someone else: its SQL gets no file, network or extension access; "
                  "the files it names must lie inside the working directory, and it may use no storage URL "
                  "(s3://…) but those --allow-remote allows.")


def _json_option(command: str, help_text: str) -> Any:
    """``--json``, noted as soon as click reads it (eager), so that an error found in the other
    options still ends in the JSON answer (curate.jsonsummary)."""

    def wanted(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
        if value and not ctx.resilient_parsing:
            jsonsummary.expect(command)
        return value

    return click.option("--json", "as_json", is_flag=True, is_eager=True, callback=wanted, help=help_text)


def _spec_shown(spec: str | None) -> str | None:
    """The spec as the JSON answer names it: ``-`` for stdin, else the file's absolute path."""
    from curate.stdinspec import STDIN

    return spec if spec in (None, STDIN) else str(Path(spec).absolute())


allow_remote_option = click.option(
    "--allow-remote", "allow_remote", multiple=True, metavar="PREFIX", callback=_storage_urls,
    help="Let an untrusted spec read and write storage URLs under PREFIX (e.g. s3://bucket/shared; "
         "repeatable), with your credentials. Without it, an untrusted spec's s3://, gs://, az://… paths "
         "are refused.")
