"""``curate validate -`` and ``curate run - --run-dir DIR`` read the spec from stdin, bounded as a
spec file is; its relative paths resolve against the working directory (automation probe F12c)."""

from __future__ import annotations

import io
import json
import sys

import polars as pl
import yaml

from curate.spec import load_spec, load_spec_text
from curate.yaml_limits import MAX_SPEC_BYTES
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

TABLE = pl.DataFrame({"url": ["u1", "u2", "u3"], "alt_text": ["a cat", "a dog", "x"]})
SPEC = {"name": "piped", "source": {"path": "data/rows.parquet"},
        "steps": [{"step": "filter", "params": {"where": "length(alt_text) > 2"}}],
        "outputs": [{"format": "parquet", "path": "out.parquet"}], "run": {"report": False}}


def stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_a_spec_on_stdin_runs_with_paths_from_the_working_directory(curate_main, workdir, monkeypatch):
    (workdir / "data").mkdir()
    TABLE.write_parquet(workdir / "data" / "rows.parquet")
    text = yaml.safe_dump(SPEC, sort_keys=False)
    stdin(monkeypatch, text.encode())
    assert curate_main("validate", "-").code == 0
    stdin(monkeypatch, text.encode())
    result = curate_main("run", "-", "--run-dir", "out/run", "--json", "--quiet")
    assert result.code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["spec"] == "-" and shown["outputs"][0]["rows"] == 2
    run_dir = workdir / "out" / "run"
    assert load_spec(run_dir / "spec.yaml").spec.hash() == load_spec_text(text).spec.hash()
    assert json.loads((run_dir / "manifest.json").read_text())["spec_path"] is None
    stdin(monkeypatch, text.replace("data/rows.parquet", "data/gone.parquet").encode())
    [error] = json.loads(curate_main("validate", "-", "--json").stdout)["errors"]
    assert error["hint"].startswith(f"a relative path is read from {workdir.resolve()}: the spec file's directory, "
                                    "or the working directory for a spec read from stdin")  # not "the spec file's"


def test_problems_name_stdin_and_its_size_is_bounded(curate_main, monkeypatch):
    stdin(monkeypatch, b"name: x\nsource: {path: rows.parquet}\nsteps: [{step: filtr}]\n")
    result = curate_main("validate", "-", "--json")
    [error] = [e for e in json.loads(result.stdout)["errors"] if e["where"] == "steps[0].step"]
    assert result.code == 2 and error["file"] == "<stdin>" and error["line"] == 3
    stdin(monkeypatch, b"# " + b"x" * MAX_SPEC_BYTES)
    result = curate_main("run", "-", "--run-dir", "run")
    assert result.code == 2
    assert f"refused: the spec on stdin is over {MAX_SPEC_BYTES:,} bytes" in result.stderr
