"""Under a true ASCII locale (LC_ALL=C, locale coercion and UTF-8 mode off) a source, run directory
and output with non-ASCII names are read and written (automation probe F15): the source read as
"does not exist", a --run-dir or listed file name ended in an internal error (curate.utf8mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import cli_env

SPEC = """name: loc
source: {path: "données"}
steps:
  - step: filter
    params: {where: "length(alt_text) > 3"}
outputs:
  - {format: parquet, path: sortié.parquet}
run: {report: false}
"""


def ascii_env() -> dict[str, str]:
    kept = cli_env()
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": kept["PYTHONPATH"], "LC_ALL": "C", "LANG": "C",
            "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0", "PYTHONDONTWRITEBYTECODE": "1"}


def test_non_ascii_names_under_an_ascii_locale(workdir):
    encoding = subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
                              env=ascii_env(), capture_output=True, text=True, check=True).stdout.strip()
    if encoding != "ascii":
        pytest.skip(f"this Python names files in {encoding} under LC_ALL=C")
    (workdir / "données").mkdir()
    rows = "url,alt_text\nhttp://a/1.jpg,hello\nhttp://a/2.jpg,ok\n"
    (workdir / "données" / "légende.csv").write_text(rows)
    (workdir / "spec.yaml").write_text(SPEC, encoding="utf-8")
    command = [sys.executable, "-m", "curate", "run", "spec.yaml", "--run-dir", "exécution", "--json",
               "--quiet"]
    done = subprocess.run(command, cwd=workdir, env=ascii_env(), capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["steps"][0]["rows_out"] == 2 and shown["outputs"][0]["rows"] == 1
    assert (workdir / "exécution" / "sortié.parquet").is_file()
