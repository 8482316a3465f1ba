"""A spec's output does not depend on the machine's time zone.

DuckDB computes with TIMESTAMPTZ in its session's time zone, which it took from the machine: the
same spec on a machine set to New York derived other uids (a timestamp in the uid's content is its
text), kept other rows (``CAST(ts AS DATE)``), computed other hours and labelled the output's
column with New York's zone. ``curate.duck``: every connection and cursor works in UTC."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import datetime

import polars as pl
import yaml

from curate.duck import connect, default_cursor, shard_connection
from tests.conftest import cli_env

ZONES = ("UTC", "America/New_York", "Asia/Kolkata")


def test_every_connection_and_cursor_works_in_utc():
    con = connect()
    try:
        for each in (con, con.cursor(), connect(untrusted=True), default_cursor(), shard_connection().cursor()):
            assert each.sql("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]
    finally:
        con.close()


def test_the_same_spec_writes_the_same_bytes_in_every_time_zone(tmp_path):
    times = [datetime(2024, 1, 1, 2), datetime(2024, 1, 1, 12), datetime(2024, 1, 2, 1), datetime(2023, 12, 31, 23)]
    table = pl.DataFrame({"url": [f"http://x/{i}.jpg" for i in range(4)], "alt_text": list("abcd"), "ts": times})
    table = table.with_columns(pl.col("ts").dt.replace_time_zone("UTC").dt.convert_time_zone("Europe/Paris"))
    table.write_parquet(tmp_path / "data.parquet")
    digests = {}
    for zone in ZONES:
        work = tmp_path / zone.replace("/", "_")
        work.mkdir()
        spec = {"name": "tz", "source": {"path": str(tmp_path / "data.parquet"), "uid_columns": ["url", "ts"]},
                "steps": [{"step": "filter", "params": {"where": "CAST(ts AS DATE) = DATE '2024-01-01'"}},
                          {"step": "sql", "params": {"query": "SELECT *, CAST(ts AS VARCHAR) AS text, hour(ts) AS h "
                                                              "FROM input"}}],
                "outputs": [{"format": "parquet", "path": str(work / "out.parquet")}],
                "run": {"dir": str(work / "run"), "report": False}}
        (work / "spec.yaml").write_text(yaml.safe_dump(spec))
        result = subprocess.run([sys.executable, "-m", "curate", "run", "spec.yaml", "--quiet"], cwd=work,
                                env=cli_env(TZ=zone), capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stderr
        digests[zone] = hashlib.sha256((work / "out.parquet").read_bytes()).hexdigest()
    out = pl.read_parquet(tmp_path / "UTC" / "out.parquet")
    assert out["h"].to_list() == [2, 12]  # the two rows whose UTC date is 2024-01-01
    assert out["text"].to_list() == ["2024-01-01 02:00:00+00", "2024-01-01 12:00:00+00"]
    assert len(set(digests.values())) == 1, digests
