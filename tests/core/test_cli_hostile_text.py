"""What `curate` prints from specs, data and run directories is shown, never run: rich markup
(``[link=…]`` hides a hyperlink) stays text, and control characters (ESC clears the screen, a
carriage return overwrites the line, a bidi override reverses it) are written as escapes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from curate import hookimpl
from curate.plugins import PluginLoadWarning
from tests.conftest import cli_env, sample_table

LINK = "[link=https://evil.example]ok[/link]"
REASON = f"{LINK} \x1b[2J\r\u202eevil"
COLUMN = "[blink]w[/blink]\x1b]8;;https://evil.example\x1b\\"


def hostile_spec(write_spec):
    write_spec({"name": "hostile", "source": {"path": "data.parquet"},
                "steps": [{"step": "filter", "params": {"where": "score > 0.5", "reason": REASON}},
                          {"step": "sql", "params": {"query": f'SELECT *, 1 AS "{COLUMN}" FROM input'}}],
                "outputs": [{"format": "csv", "path": "[bold]out\x1b[8m.csv"}],
                "run": {"dir": "run", "shard_size": 8}}, table=sample_table(40))


def assert_shown_not_run(text: str) -> None:
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text, repr(text)


def test_plan_run_and_inspect_show_spec_and_data_text_as_text(curate_main, write_spec):
    hostile_spec(write_spec)
    plan = curate_main("plan", "spec.yaml")
    assert plan.code == 0, plan
    assert "[blink]w[/blink]\\x1b]8;;https://evil.example\\x1b\\" in plan.stdout
    assert "[bold]out\\x1b[8m.csv" in plan.stdout
    run = curate_main("run", "spec.yaml")  # the funnel: not with --quiet
    assert run.code == 0, run
    inspect = curate_main("inspect", "run")
    for shown in (run.stderr, inspect.stdout):
        assert_shown_not_run(shown)
        assert LINK in shown and "\\x1b[2J\\x0d\\u202eevil" in shown
    assert "[bold]out\\x1b[8m.csv" in run.stderr
    assert_shown_not_run(plan.stdout)


def test_errors_show_control_characters_as_escapes(curate_main, write_spec):
    write_spec({"name": "bad", "source": {"path": "data.parquet"},
                "steps": [{"step": "filter", "params": {"where": 'length("no\x1b[2Jsuch") > 1'}}],
                "run": {"dir": "run"}}, table=sample_table(10))
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2
    assert "no\\x1b[2Jsuch" in result.stderr
    assert_shown_not_run(result.stderr)


def test_warnings_and_log_records_show_control_characters_as_escapes():
    probe = ("import logging, sys, warnings\n"
             "from curate.cli import main\n"
             "from curate.runstore import StoreWarning\n"
             "sys.argv = ['curate', '--version']\n"
             "main()\n"
             "warnings.warn('store \\x1b[2J\\rwarning', StoreWarning)\n"
             "logging.getLogger('curate_download').warning('refused http://x/\\x1b]8;;evil\\x07')\n")
    result = subprocess.run([sys.executable, "-c", probe], env=cli_env(), capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "curate: warning: store \\x1b[2J\\x0dwarning" in result.stderr
    assert "refused http://x/\\x1b]8;;evil\\x07" in result.stderr
    assert_shown_not_run(result.stderr)


class HostileCommands:
    """A plugin whose command fails with click's own exception, quoting what it was given."""

    @hookimpl
    def curate_register_commands(self, cli):
        import click

        @cli.command("hostile-click-error")
        @click.argument("value")
        def hostile_click_error(value: str) -> None:
            raise click.ClickException(f"cannot use {value}")


class HostileBroken:
    @hookimpl
    def curate_register_steps(self):
        raise RuntimeError(f"broken by {REASON}")


def test_a_plugin_commands_click_exception_is_shown_with_escapes(register_plugin, curate_main):
    register_plugin(HostileCommands(), "hostile_commands")
    result = curate_main("hostile-click-error", REASON)
    assert result.code == 2, result
    assert f"Error: cannot use {LINK} \\x1b[2J\\x0d\\u202eevil" in result.stderr
    assert_shown_not_run(result.stderr)


def test_plugins_lists_a_failed_plugins_error_with_escapes(register_plugin, curate_main):
    register_plugin(HostileBroken(), "hostile_broken")
    with pytest.warns(PluginLoadWarning):
        result = curate_main("plugins")
    assert result.code == 0, result
    assert f"failed hostile_broken: RuntimeError: broken by {LINK} \\x1b[2J\\x0d\\u202eevil" in result.stdout
    assert_shown_not_run(result.stdout)
