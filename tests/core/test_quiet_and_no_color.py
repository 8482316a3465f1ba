"""``run --quiet`` prints only warnings and errors; ``NO_COLOR`` takes the colour off error text.

``--quiet`` still wrote the funnel table and the "wrote …" lines (cron mailed every night), and the
red of ``error:`` ignored NO_COLOR on a terminal (automation probe).
"""

from __future__ import annotations

import click.utils
import polars as pl

from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

TABLE = pl.DataFrame({"url": [f"u{i}" for i in range(20)], "alt_text": [f"text {i}" for i in range(20)]})
SPEC = {"name": "s", "source": {"path": "data.parquet"},
        "steps": [{"step": "filter", "params": {"where": "true"}}],
        "outputs": [{"format": "parquet", "path": "out.parquet"}], "run": {"dir": "run", "report": False}}


def test_quiet_prints_no_funnel_and_no_wrote_lines(curate_main, write_spec):
    write_spec(SPEC, table=TABLE)
    quiet = curate_main("run", "spec.yaml", "--quiet")
    assert quiet.code == 0 and (quiet.stdout, quiet.stderr) == ("", ""), quiet
    loud = curate_main("run", "spec.yaml")
    assert "wrote parquet" in loud.stderr and "run directory:" in loud.stderr


def test_no_color_takes_the_red_off_errors(curate_main, write_spec, monkeypatch):
    write_spec({**SPEC, "steps": [{"step": "filtr"}]}, table=TABLE)
    monkeypatch.setattr(click.utils, "should_strip_ansi", lambda *args: False)  # as on a terminal
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[31m" in curate_main("validate", "spec.yaml").stderr
    monkeypatch.setenv("NO_COLOR", "1")
    plain = curate_main("validate", "spec.yaml")
    assert plain.code == 2 and "error:" in plain.stderr and "\x1b[" not in plain.stderr, plain
