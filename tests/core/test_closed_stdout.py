"""A reader that closes stdout early ends curate quietly with exit 0 (curate.closedpipe).

``curate inspect RUN | grep -q …`` under ``set -o pipefail`` failed at random with exit 1, the code
of a failed run: rich and click turned the EPIPE into SystemExit(1) (automation probe).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

ROOT = Path(__file__).resolve().parents[2]
TABLE = pl.DataFrame({"url": [f"u{i}" for i in range(20)], "alt_text": [f"text {i}" for i in range(20)]})
SPEC = {"name": "s", "source": {"path": "data.parquet"},
        "steps": [{"step": "filter", "params": {"where": "true"}}],
        "run": {"dir": "run", "report": False}}


def closed_pipe_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``curate ARGS`` with stdout a pipe whose reader has already gone: its first write fails."""
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}",
           "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        return subprocess.run([sys.executable, "-m", "curate", *args], stdout=write, stderr=subprocess.PIPE,
                              cwd=tmp_path, env=env, text=True, timeout=120)
    finally:
        os.close(write)


def test_a_closed_stdout_ends_rich_and_click_output_quietly_with_0(curate_main, write_spec, workdir):
    write_spec(SPEC, table=TABLE)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    for args in (["inspect", "run"], ["inspect", "run", "--json"]):  # rich's console; click.echo
        done = closed_pipe_run(workdir, *args)
        assert (done.returncode, done.stderr) == (0, ""), (args, done)
