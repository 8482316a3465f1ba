"""The peers benchmark's harness without the peers: curate and the Polars floor agree on a small
table, outputs are compared the way the benchmark compares them, and a peer that cannot be
installed is recorded, not raised (the peers themselves are installed by ``python -m benchmarks
--only peers``, minutes, not here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from benchmarks import bench_peers, synthetic
from benchmarks.measure import measure


@pytest.fixture
def parts(tmp_path: Path) -> Path:
    """A 6,000-row synthetic table in three files, with a duplicate url across files."""
    table = pl.read_parquet(synthetic.metadata_table(6_000, tmp_path / "data") / "*.parquet")
    out = tmp_path / "parts"
    out.mkdir()
    for part in range(3):
        table.slice(part * 2_000, 2_000).write_parquet(out / f"part-{part:05d}.parquet")
    return out


def test_curate_and_polars_keep_the_same_rows(parts: Path, tmp_path: Path) -> None:
    curate_work, polars_work = tmp_path / "curate", tmp_path / "polars"
    curate_work.mkdir()
    polars_work.mkdir()
    argv, output = bench_peers.command("curate", parts, curate_work)
    measure(argv)
    curate = bench_peers.read_output(output)
    argv, output = bench_peers.command("polars", parts, polars_work)
    rows = json.loads(measure(argv).stdout.strip().splitlines()[-1])["rows"]
    floor = bench_peers.read_output(output)

    source = pl.read_parquet(parts / "*.parquet")
    expected = (source.filter(pl.col("url").str.starts_with("http") & (pl.col("alt_text").str.len_chars() >= 3))
                .unique(subset=["url"], keep="first", maintain_order=True))
    assert 0 < expected.height < source.height
    assert rows == curate.height == expected.height
    assert bench_peers.compare(curate, floor) == {"same": "rows", "other_survivor": 0}
    assert bench_peers.compare(curate, expected) == {"same": "rows", "other_survivor": 0}


def test_compare_tells_rows_from_urls_from_different() -> None:
    reference = pl.DataFrame({"url": ["a", "b", "c"], "alt_text": ["x", "y", None]})
    assert bench_peers.compare(reference, reference.reverse())["same"] == "rows"
    other_survivor = reference.with_columns(pl.Series("alt_text", ["x", "z", None]))
    assert bench_peers.compare(reference, other_survivor) == {"same": "urls", "other_survivor": 1}
    assert bench_peers.compare(reference, reference.head(2))["same"] == "no"
    assert bench_peers.compare(reference, reference.with_columns(pl.lit("d").alias("url")))["same"] == "no"


def test_a_peer_that_cannot_be_installed_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(bench_peers.PEERS, "nopeer", {
        "packages": ["/nonexistent/no-such-package.whl"], "distribution": "no-such-package",
        "job": tmp_path / "job.py", "how": "-"})
    result = bench_peers.ensure_peer("nopeer", tmp_path)
    assert "error" in result and "no-such-package" in result["error"]
    assert not (tmp_path / "nopeer" / "_INSTALLED.json").exists()


def test_an_installed_peer_is_reused(tmp_path: Path) -> None:
    venv = tmp_path / "datatrove"
    venv.mkdir()
    (venv / "_INSTALLED.json").write_text('{"version": "9.9", "packages": ["datatrove"]}')
    assert bench_peers.ensure_peer("datatrove", tmp_path) == {"version": "9.9", "packages": ["datatrove"]}


def test_peer_jobs_parse_in_this_python() -> None:
    """The peer jobs run in their own venvs; they must at least compile here, and the Data-Juicer
    recipe must be YAML with the ops the notes describe."""
    for job in bench_peers.JOBS_DIR.glob("*.py"):
        subprocess.run([sys.executable, "-m", "py_compile", str(job)], check=True)
    import yaml

    recipe = yaml.safe_load((bench_peers.JOBS_DIR / "datajuicer.yaml").read_text())
    ops = [next(iter(op)) for op in recipe["process"]]
    assert ops == ["general_field_filter", "text_length_filter", "document_deduplicator"]
    assert recipe["np"] == bench_peers.WORKERS
