"""benchmarks/memory_probe.py: a real ``curate run`` of the metadata benchmark's spec on a small
table, with the sampler logging RSS and each table-step connection's DuckDB memory by tag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from benchmarks import bench_metadata, synthetic

REPO = Path(__file__).resolve().parents[2]


def test_the_probe_runs_curate_and_logs_rss_and_duckdb_memory(tmp_path: Path) -> None:
    source = synthetic.metadata_table(20_000, tmp_path / "data")
    spec = bench_metadata.spec(source, tmp_path / "out.parquet", tmp_path / "run")
    spec["run"]["shard_size"] = 5_000
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    log = tmp_path / "probe.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "memory_probe.py"), "--log", str(log),
                           "--interval", "0.02", "--", "run", str(tmp_path / "spec.yaml"), "--quiet", "--no-cache"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.parquet").exists()
    samples = [json.loads(line) for line in log.read_text().splitlines()]
    assert samples and all(rss > 0 for _, rss, _ in samples)
    labels = {label for _, _, parts in samples for label in parts}
    assert labels <= {"source", "exact_dedup"} and labels  # the table steps' connections
    for _, _, parts in samples:
        for tags in parts.values():
            assert all(len(pair) == 2 and min(pair) >= 0 for pair in tags.values())
