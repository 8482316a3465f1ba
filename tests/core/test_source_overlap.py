"""A source never reads curate's own files, and an output never writes over the source.

A spec next to its data with ``source.path: .`` listed its own run directory on the next run:
the stored shards and the output were read as source rows (here refused only because their
``uid`` column made the files disagree; with a ``uid`` in the data they were read), and the
source was never reused from the cache (its files changed every run). An output given the
source's own path replaced the data the run read with the curated subset."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

TABLE = pl.DataFrame({"url": [f"https://a/{i}.jpg" for i in range(6)], "alt_text": [f"text {i}" for i in range(6)]})
DROP_TWO = {"step": "filter", "params": {"where": "url NOT LIKE '%/4.jpg' AND url NOT LIKE '%/5.jpg'"}}


def manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def source_record(run: Path) -> dict:
    return next(r for r in manifest(run)["steps"] if r["label"] == "source")


@pytest.mark.parametrize("with_uid", [False, True])
def test_a_source_folder_holding_the_run_directory_reads_only_the_data(curate_main, write_spec, workdir, with_uid):
    table = TABLE.with_columns(pl.format("u{}", pl.int_range(pl.len())).alias("uid")) if with_uid else TABLE
    write_spec({"name": "dot", "source": {"format": "parquet", "path": "."}, "steps": [DROP_TWO],
                "outputs": [{"format": "parquet", "path": "out.parquet"}],
                "run": {"dir": "runs/dot", "report": False}}, table=table)
    for attempt in range(2):
        result = curate_main("run", "spec.yaml", "--quiet")
        assert result.code == 0, (attempt, result)
        record = source_record(workdir / "runs" / "dot")
        assert record["rows_in"] == 6, attempt
    assert record["cached"], "the source's files did not change: the second run reuses it"
    assert pl.read_parquet(workdir / "runs" / "dot" / "out.parquet").height == 4


def test_another_run_below_the_source_folder_is_skipped_but_a_pattern_naming_its_output_reads_it(
        curate_main, write_spec, workdir):
    data = workdir / "data"
    write_spec({"name": "first", "source": {"format": "parquet", "path": "data.parquet"}, "steps": [DROP_TWO],
                "outputs": [{"format": "parquet", "path": "out.parquet"}],
                "run": {"dir": "data/runs/first", "report": False}}, name="first.yaml", directory=data, table=TABLE)
    assert curate_main("run", "data/first.yaml", "--quiet").code == 0
    write_spec({"name": "all", "source": {"format": "parquet", "path": "data"},
                "run": {"dir": "runs/all", "report": False}}, name="all.yaml")
    assert curate_main("run", "all.yaml", "--quiet").code == 0
    assert source_record(workdir / "runs" / "all")["rows_in"] == 6  # data.parquet only, not the run's files
    write_spec({"name": "outputs", "source": {"format": "parquet", "path": "data/runs/*/out.parquet"},
                "run": {"dir": "runs/outputs", "report": False}}, name="outputs.yaml")
    assert curate_main("run", "outputs.yaml", "--quiet").code == 0
    assert source_record(workdir / "runs" / "outputs")["rows_in"] == 4  # the first run's curated rows


def test_an_output_over_the_source_file_is_refused_and_the_file_kept(curate_main, write_spec, workdir):
    write_spec({"name": "over", "source": {"format": "parquet", "path": "data.parquet"}, "steps": [DROP_TWO],
                "outputs": [{"format": "parquet", "path": str(workdir / "data.parquet")}],
                "run": {"dir": "runs/over", "report": False}}, table=TABLE)
    before = (workdir / "data.parquet").read_bytes()
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 2, result
    assert f"is the source's file {workdir / 'data.parquet'}: the run would write over the data it reads" \
        in result.stderr
    assert (workdir / "data.parquet").read_bytes() == before


@pytest.mark.parametrize(("source_path", "output", "expected"), [
    ("data", "data/sub/curated.parquet", "is inside the source's folder"),
    ("data/*.parquet", "data/curated.parquet", "matches source.path 'data/*.parquet'"),
    ("data/a.parquet", "data", "holds the source's file"),
])
def test_an_output_the_next_run_would_read_as_source_is_refused(curate_main, write_spec, workdir, source_path,
                                                                  output, expected):
    (workdir / "data").mkdir()
    TABLE.write_parquet(workdir / "data" / "a.parquet")
    write_spec({"name": "next", "source": {"format": "parquet", "path": source_path},
                "outputs": [{"format": "parquet", "path": str(workdir / output)}],
                "run": {"dir": "runs/next", "report": False}})
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2, result
    assert expected in result.stderr


def test_outputs_beside_the_source_are_fine(curate_main, write_spec, workdir):
    (workdir / "data").mkdir()
    TABLE.write_parquet(workdir / "data" / "a.parquet")
    write_spec({"name": "beside", "source": {"format": "parquet", "path": "data/*.parquet"},
                "outputs": [{"format": "parquet", "path": str(workdir / "curated" / "out.parquet")},
                            {"format": "parquet", "path": "in-run.parquet"}],
                "run": {"dir": "data/runs/beside", "report": False}})
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 0, result
    assert pl.read_parquet(workdir / "curated" / "out.parquet").height == 6
