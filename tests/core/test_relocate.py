"""``curate relocate``: a moved, copied or unpacked run directory reads its own files again
(curate.relocate).

A copy's manifest and DuckDB views named the original's files by absolute path; once the original
was gone the README's query failed with "No files found", and ``--resume`` could not re-point them
without the spec's source data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import polars as pl

from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

TABLE = pl.DataFrame({"url": [f"u{i}" for i in range(40)], "alt_text": ["x" * (i % 9 + 1) for i in range(40)]})


def spec(**run: str) -> dict:
    return {"name": "s", "source": {"path": "data.parquet"},
            "steps": [{"step": "filter", "params": {"where": "length(alt_text) > 3"}},
                      {"step": "exact_dedup", "params": {"columns": ["alt_text"]}}],
            "outputs": [{"format": "parquet", "path": "curated.parquet"}],
            "run": {"dir": "run", "report": False, **run}}


def final_rows(run_dir: Path) -> list:
    with duckdb.connect(str(run_dir / "curate.duckdb"), read_only=True) as db:
        return sorted(db.sql("SELECT uid, alt_text FROM final").fetchall())


def test_a_copy_whose_original_and_source_are_gone_reads_its_own_files(curate_main, write_spec, workdir):
    write_spec(spec(), table=TABLE)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    rows = final_rows(workdir / "run")
    shutil.copytree(workdir / "run", workdir / "archive" / "run", symlinks=True)
    shutil.rmtree(workdir / "run")
    (workdir / "data.parquet").unlink()
    copy = workdir / "archive" / "run"

    assert "curate relocate" in curate_main("inspect", str(copy)).stdout
    moved = curate_main("relocate", str(copy))
    assert moved.code == 0 and "run directory" in moved.stdout and "not as it was stored" not in moved.stdout, moved
    assert final_rows(copy) == rows
    manifest = json.loads((copy / "manifest.json").read_text())
    assert Path(manifest["run_dir"]) == copy.resolve() and Path(manifest["store_dir"]) == copy.resolve() / "store"
    assert all(Path(r["path"]).is_relative_to(copy.resolve()) for r in manifest["steps"] if r.get("complete"))
    assert Path(manifest["outputs"][0]["path"]) == copy.resolve() / "curated.parquet"
    assert curate_main("inspect", str(copy), "--verify").code == 0
    assert "was written at" not in curate_main("inspect", str(copy)).stdout


def test_a_store_kept_outside_is_named_or_asked_for(curate_main, write_spec, workdir):
    write_spec(spec(cache_dir="cache"), table=TABLE)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    rows = final_rows(workdir / "run")
    shutil.move(workdir / "run", workdir / "moved")
    shutil.move(workdir / "cache", workdir / "moved-cache")

    asked = curate_main("relocate", "moved")
    assert asked.code != 0 and "outside its run directory" in asked.stderr and "--store" in asked.stderr, asked
    assert curate_main("relocate", "moved", "--store", "moved-cache").code == 0
    assert final_rows(workdir / "moved") == rows
