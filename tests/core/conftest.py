"""A third-party plugin, built outside the repo as an installed distribution would be, for the
tests that run ``curate`` in a subprocess (entry points, kill and resume, CLI exit codes)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult

SHOUT_PLUGIN = '''
"""curate-shout: a tiny third-party plugin."""
import os
import time

import polars as pl
from pydantic import Field

from curate import Step, StepParams, hookimpl


class Shout(Step):
    """Upper-cases the alt-text into a new column."""

    name = "shout"
    description = "alt_text in capitals, plus a suffix"
    reads = {"alt_text": pl.Utf8}
    writes = {"shout": pl.Utf8}

    class Params(StepParams):
        suffix: str = "!"
        # Seconds to sleep per shard, so a test can kill a run mid-step; not part of the output.
        delay: float = Field(0.0, ge=0, json_schema_extra={"fingerprint": False})
        # A file each shard waits for ("" for none), so a test holds a run mid-step for as long as
        # it needs, however loaded the machine: the step creates GATE.waiting once it waits.
        gate: str = Field("", json_schema_extra={"fingerprint": False})

    def process_shard(self, table, ctx):
        time.sleep(self.params.delay)
        if self.params.gate:
            open(self.params.gate + ".waiting", "a").close()
            while not os.path.exists(self.params.gate):
                time.sleep(0.01)
        return table.with_columns(
            (pl.col("alt_text").fill_null("").str.to_uppercase() + self.params.suffix).alias("shout")
        )


class Explode(Step):
    """Fails on shard 1, like a plugin with a bug."""

    name = "explode"

    def process_shard(self, table, ctx):
        if ctx.shard == 1:
            raise RuntimeError("the plugin has a bug")
        return table


class NeedsMissing(Step):
    name = "needs_missing"
    requires = ("curate_test_absent_module",)
    extra = "absent"


@hookimpl
def curate_register_steps():
    return [Shout, Explode, NeedsMissing]


@hookimpl
def curate_register_commands(cli):
    import click

    @cli.command()
    def hello():
        """Say hello (a command added by a plugin)."""
        click.echo("hello from curate-shout")
'''

BROKEN_PLUGIN = '''
raise RuntimeError("curate-broken cannot start: misconfigured")
'''


@pytest.fixture
def shout_plugin(make_plugin_dist: Callable[..., Path]) -> Path:
    """The PYTHONPATH entry that installs the ``curate-shout`` 0.3.1 plugin (entry point ``shout``)."""
    return make_plugin_dist("curate-shout", SHOUT_PLUGIN, version="0.3.1", entry_point="shout")


@pytest.fixture
def broken_plugin(make_plugin_dist: Callable[..., Path]) -> Path:
    return make_plugin_dist("curate-broken", BROKEN_PLUGIN, version="9.9", entry_point="broken")


@pytest.fixture
def curate_main(pm, workdir, capsys, monkeypatch) -> Callable[..., CliResult]:
    """Run ``curate ARGS`` in this process (cheaper than a subprocess) with the test's plugin
    manager as the process-wide one, in ``workdir``. Returns exit code and captured output."""
    import curate.plugins
    from curate.cli import main

    monkeypatch.setattr(curate.plugins, "_default", pm)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(workdir)

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return CliResult(subprocess.CompletedProcess(list(args), code, out, err))

    return run
