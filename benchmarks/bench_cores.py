"""The metadata pipeline (benchmarks/bench_metadata.py) through `curate run` on 1 core and on 2
cores (taskset), alternating: how much the local executor's default (every core: a thread pool
for the built-in shard steps, Polars' and DuckDB's own threads) speeds each step up. Reports the
speedup of the shard-scope steps (filter, normalize_text, sample), of the table steps and of
the whole run, with CPU seconds. Needs Linux's taskset and at least 2 cores."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from benchmarks import synthetic
from benchmarks.bench_metadata import SEED, spec
from benchmarks.measure import curate_command, data_dir, measure, median, tmp_dir

ROWS = {"small": 1_000_000, "full": 10_000_000}
REPEATS = {"small": 3, "full": 1}
SHARD_STEPS = ("http_images", "normalize_text", "sample")
TABLE_STEPS = ("source", "exact_dedup")


def run_once(cores: str, spec_path: Path, run_dir: Path) -> dict[str, Any]:
    shutil.rmtree(run_dir, ignore_errors=True)
    measured = measure(["taskset", "-c", cores, *curate_command(), "run", str(spec_path), "--quiet", "--no-cache"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    shutil.rmtree(run_dir, ignore_errors=True)
    steps = {s["label"]: s["seconds"] for s in manifest["steps"]}
    return {"seconds": measured.seconds, "cpu_seconds": measured.cpu_seconds, "peak_rss_mb": measured.peak_rss_mb,
            "steps": steps, "shard_steps": sum(steps[s] for s in SHARD_STEPS),
            "table_steps": sum(steps[s] for s in TABLE_STEPS)}


def run(scale: str) -> dict[str, Any]:
    if len(os.sched_getaffinity(0)) < 2:
        raise RuntimeError("bench_cores needs at least 2 cores")
    rows = int(os.environ.get("CURATE_BENCH_ROWS", ROWS[scale]))
    repeats = int(os.environ.get("CURATE_BENCH_REPEATS", REPEATS[scale]))
    source = synthetic.metadata_table(rows, data_dir("metadata"), seed=SEED)
    work = tmp_dir("cores", str(rows))
    run_dir = work / "run"
    spec_path = work / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec(source, work / "out.parquet", run_dir), sort_keys=False))
    runs: dict[str, list[dict[str, Any]]] = {"1 core": [], "2 cores": []}
    for _ in range(repeats):  # alternate, so load from elsewhere hits both alike
        runs["1 core"].append(run_once("0", spec_path, run_dir))
        runs["2 cores"].append(run_once("0,1", spec_path, run_dir))
    table = []
    medians: dict[str, dict[str, float]] = {}
    for name, results in runs.items():
        medians[name] = {key: median([r[key] for r in results])
                         for key in ("seconds", "cpu_seconds", "shard_steps", "table_steps", "peak_rss_mb")}
        medians[name].update({label: median([r["steps"][label] for r in results]) for label in results[0]["steps"]})
        table.append({"cores": name, **{k: round(v, 2) for k, v in medians[name].items()}})
    one, two = medians["1 core"], medians["2 cores"]
    headline = {
        "rows": rows,
        "speedup 1 -> 2 cores, shard steps (filter, normalize_text, sample)": round(one["shard_steps"] / two["shard_steps"], 2),
        **{f"speedup 1 -> 2 cores, {label}": round(one[label] / two[label], 2) for label in (*SHARD_STEPS, *TABLE_STEPS)},
        "speedup 1 -> 2 cores, whole run": round(one["seconds"] / two["seconds"], 2),
    }
    return {"headline": headline, "table": table, "runs": runs}
