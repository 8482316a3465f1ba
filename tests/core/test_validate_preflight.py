"""``curate validate`` warns of what ``curate run`` would refuse at once (curate.preflight).

It said "ok" for a run directory another run held, and in a folder this user could not write: a CI
pre-flight passed and the job then failed (automation probe).
"""

from __future__ import annotations

import os

import polars as pl

import curate.preflight
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

TABLE = pl.DataFrame({"url": [f"u{i}" for i in range(20)], "alt_text": [f"text {i}" for i in range(20)]})
SPEC = {"name": "s", "source": {"path": "data.parquet"},
        "steps": [{"step": "filter", "params": {"where": "true"}}],
        "run": {"dir": "run", "report": False}}


def test_validate_warns_of_a_held_run_directory(curate_main, write_spec, workdir):
    from curate.lock import locked

    write_spec(SPEC, table=TABLE)
    assert "warning" not in curate_main("validate", "spec.yaml").stderr
    (workdir / "run").mkdir()
    with locked([(workdir / "run", "run directory")]):  # another run holds it
        shown = curate_main("validate", "spec.yaml")
    assert shown.code == 0 and "ok spec.yaml" in shown.stdout, shown
    assert "warning: the run directory" in shown.stderr
    assert "in use by another curate run: pid" in shown.stderr
    assert "--wait" in shown.stderr


def test_validate_warns_of_a_run_directory_it_cannot_create(curate_main, write_spec, workdir, monkeypatch):
    write_spec(SPEC, table=TABLE)
    real = os.access
    # as root, chmod makes nothing unwritable: this user may not write in the working directory
    monkeypatch.setattr(curate.preflight.os, "access",
                        lambda path, mode, **kw: str(path) != str(workdir) and real(path, mode, **kw))
    shown = curate_main("validate", "spec.yaml")
    assert shown.code == 0, shown
    assert f"the run directory {workdir / 'run'} cannot be created by this user" in shown.stderr, shown
    assert shown.stderr.count("warning") == 1  # its store, inside it, says the same
