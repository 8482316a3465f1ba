"""One CLI style: every plugin command is a click command with its own options (no argparse
behind click.UNPROCESSED), so `curate X --help` lists them and click reports bad options."""

from __future__ import annotations

import click

from curate.plugins import get_plugin_manager


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield path + (name,), command
        if isinstance(command, click.Group):
            yield from _commands(command, path + (name,))


def test_no_command_forwards_unparsed_arguments():
    group = click.Group("curate")
    get_plugin_manager().hook.curate_register_commands(cli=group)
    assert {"clip", "dedup", "captioner", "train", "experiment"} <= set(group.commands)
    for path, command in _commands(group):
        unprocessed = [p.name for p in command.params if p.type is click.UNPROCESSED]
        assert not unprocessed, f"curate {' '.join(path)} takes raw arguments: {unprocessed}"
