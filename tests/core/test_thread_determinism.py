"""The same spec stores the same bytes whatever number of threads DuckDB runs on: a run directory
moves between a one-core container, a laptop and a server, and an auditor diffs their markers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

import curate.duck
from curate.testing import run_spec

SPEC = """\
source: {format: parquet, path: src}
steps:
  - step: filter
    params: {where: "length(alt_text) > 6"}
outputs:
  - {format: parquet, path: out.parquet}
run: {report: false}
"""
REAL_CONNECT = duckdb.connect


def _on_threads(monkeypatch: pytest.MonkeyPatch, threads: int) -> None:
    """DuckDB as it opens on a machine where its default is ``threads`` threads."""
    def connect(database: str = ":memory:", read_only: bool = False, config: dict | None = None):
        return REAL_CONNECT(database, read_only, {**(config or {}), "threads": threads})

    monkeypatch.setattr(curate.duck.duckdb, "connect", connect)


def _stored(run: Path) -> dict[str, bytes]:
    """Every file of the run but the report, the DuckDB views and spill room; markers without times."""
    files = {}
    for path in sorted(run.rglob("*")):
        name = path.relative_to(run).as_posix()
        if not path.is_file() or name.startswith("tmp/") or name.endswith(".duckdb"):
            continue
        data = path.read_bytes()
        if name.endswith(".json"):
            data = json.dumps(_timeless(json.loads(data)), sort_keys=True).encode()
        files[name] = data
    return files


def _timeless(record: object) -> object:
    """``record`` without its times and durations (``started_at``, ``seconds``, a store
    registration's ``last_run`` / ``last_used``…), at any depth."""
    if isinstance(record, dict):
        return {k: _timeless(v) for k, v in record.items()
                if not k.endswith(("seconds", "_at")) and not k.startswith("last_")}
    if isinstance(record, list):
        return [_timeless(v) for v in record]
    return record


def test_one_thread_stores_what_several_store(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Three files of 41,000 rows: on two threads or more DuckDB hands each over as a batch of its
    # own, and a shard of 100,000 rows made of such batches became row groups of 82,000 and 18,000
    # rows; on one thread the batches are full and the shard one row group of 100,000.
    (workdir / "src").mkdir()
    for part in range(3):
        rows = range(part * 41_000, (part + 1) * 41_000)
        table = pl.DataFrame({"url": [f"https://example.com/{i}.jpg" for i in rows],
                              "alt_text": [f"photo {i % 977}" for i in rows]})
        table.write_parquet(workdir / "src" / f"{part}.parquet")
    stored = {}
    for threads in (1, 8):
        _on_threads(monkeypatch, threads)
        run_spec(SPEC, workdir)
        stored[threads] = _stored(workdir / "run")
        shutil.rmtree(workdir / "run")
    assert any(name.endswith("shard-00001.parquet") for name in stored[1])  # more than one shard
    assert stored[1].keys() == stored[8].keys()
    differ = [name for name in stored[1] if stored[1][name] != stored[8][name]]
    assert not differ


def test_connections_run_on_two_threads_at_least(monkeypatch: pytest.MonkeyPatch) -> None:
    _on_threads(monkeypatch, 1)
    for con in (curate.duck.connect(), curate.duck.connect(untrusted=True)):
        try:
            assert con.sql("SELECT current_setting('threads')").fetchall()[0][0] == 2
        finally:
            con.close()
    _on_threads(monkeypatch, 3)
    con = curate.duck.connect()
    assert con.sql("SELECT current_setting('threads')").fetchall()[0][0] == 3  # more are left as they are
    con.close()
