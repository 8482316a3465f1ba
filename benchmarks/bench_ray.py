"""The Ray executor on a CPU-bound spec (filter + normalize_text, all shard-scope): how step time
scales from 1 to 2 Ray workers, and what Ray costs over the local executor, per step and per run.

Each configuration is ``curate run`` in a subprocess on the same synthetic metadata (cached under
benchmarks/.data/, shared with bench_metadata): the local executor in-process and with 2 worker
processes, and a local Ray cluster of 1 and of 2 CPUs started by the run. Configurations
alternate within each repeat so background load hits them alike; numbers are medians. "Steps"
is the time the manifest records for the shard-scope steps (the executor's work); "run" is the
whole command, which for Ray includes starting and stopping its cluster. Every configuration
must keep exactly the same rows.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from benchmarks import synthetic
from benchmarks.measure import Measurement, curate_command, data_dir, measure, median, tmp_dir

SIZES = {"small": 500_000, "full": 2_000_000}
REPEATS = {"small": 2, "full": 3}  # override with CURATE_BENCH_REPEATS
SHARDS = 16
SEED = 0

CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "local, in-process": {"name": "local"},
    "local, 2 processes": {"name": "local", "params": {"workers": 2}},
    "ray, 1 CPU": {"name": "ray", "params": {"num_cpus": 1}},
    "ray, 2 CPUs": {"name": "ray", "params": {"num_cpus": 2}},
}

FILTER = "url LIKE 'http%' AND alt_text IS NOT NULL AND NOT (lower(url) LIKE '%.svg' OR lower(url) LIKE '%.gif')"


def spec(source: Path, run_dir: Path, rows: int, executor: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "bench_ray",
        "source": {"format": "parquet", "path": str(source)},
        "steps": [
            {"step": "filter", "name": "http_images", "params": {"where": FILTER}},
            {"step": "normalize_text", "params": {"max_length": 512, "min_length": 5}},
        ],
        "run": {"dir": str(run_dir), "seed": SEED, "report": False, "shard_size": -(-rows // SHARDS),
                "executor": executor},
    }


def run_once(spec_path: Path, run_dir: Path) -> tuple[Measurement, dict[str, Any]]:
    shutil.rmtree(run_dir, ignore_errors=True)
    measured = measure([*curate_command(), "run", str(spec_path), "--quiet", "--no-cache"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    shutil.rmtree(run_dir, ignore_errors=True)
    return measured, manifest


def run(scale: str) -> dict[str, Any]:
    rows = SIZES[scale]
    repeats = int(os.environ.get("CURATE_BENCH_REPEATS") or REPEATS[scale])
    source = synthetic.metadata_table(rows, data_dir("metadata"), seed=SEED)
    work = tmp_dir("ray", str(rows))
    runs: dict[str, list[tuple[Measurement, dict[str, Any]]]] = {name: [] for name in CONFIGURATIONS}
    spec_paths = {}
    for index, (name, executor) in enumerate(CONFIGURATIONS.items()):
        run_dir = work / f"run{index}"
        spec_paths[name] = (work / f"spec{index}.yaml", run_dir)
        spec_paths[name][0].write_text(yaml.safe_dump(spec(source, run_dir, rows, executor), sort_keys=False))
    for _ in range(repeats):
        for name in CONFIGURATIONS:
            runs[name].append(run_once(*spec_paths[name]))

    kept = {name: [m["steps"][-1]["rows_out"] for _, m in results] for name, results in runs.items()}
    if len({count for counts in kept.values() for count in counts}) != 1:
        raise AssertionError(f"configurations kept different rows: {kept}")

    def steps_seconds(manifest: dict[str, Any]) -> float:
        return sum(s["seconds"] for s in manifest["steps"][1:])

    def shard_seconds(manifest: dict[str, Any]) -> float:  # inside run_shard_task, summed over shards
        return sum(s["shard_seconds"] for s in manifest["steps"][1:])

    summary = {}
    for name, results in runs.items():
        summary[name] = {
            "run_seconds": round(median([m.seconds for m, _ in results]), 2),
            "steps_seconds": round(median([steps_seconds(manifest) for _, manifest in results]), 2),
            "shard_seconds": round(median([shard_seconds(manifest) for _, manifest in results]), 2),
            "source_seconds": round(median([manifest["steps"][0]["seconds"] for _, manifest in results]), 2),
            "cpu_seconds": round(median([m.cpu_seconds for m, _ in results]), 1),
            "peak_rss_mb": median([m.peak_rss_mb for m, _ in results]),
            "runs": [m.facts() for m, _ in results],
            "steps_runs": [round(steps_seconds(manifest), 2) for _, manifest in results],
        }
    one, two = summary["ray, 1 CPU"], summary["ray, 2 CPUs"]
    local, local2 = summary["local, in-process"], summary["local, 2 processes"]
    headline = {
        "ray steps speed-up, 1 → 2 CPUs": round(one["steps_seconds"] / two["steps_seconds"], 2),
        "local steps speed-up, in-process → 2 processes": round(local["steps_seconds"] / local2["steps_seconds"], 2),
        "ray / local steps time, 1 worker": round(one["steps_seconds"] / local["steps_seconds"], 2),
        "ray / local steps time, 2 workers": round(two["steps_seconds"] / local2["steps_seconds"], 2),
        "ray fixed cost per run, s (run − source − steps, 2 CPUs)": round(
            two["run_seconds"] - two["source_seconds"] - two["steps_seconds"]
            - (local2["run_seconds"] - local2["source_seconds"] - local2["steps_seconds"]), 1),
    }
    table = [
        {"executor": name, "run s": s["run_seconds"], "steps s": s["steps_seconds"],
         "steps runs": " ".join(f"{x:.1f}" for x in s["steps_runs"]), "in shards s": s["shard_seconds"],
         "CPU s": s["cpu_seconds"],
         "peak RSS MB": s["peak_rss_mb"]}
        for name, s in summary.items()
    ]
    return {
        "headline": headline,
        "table": table,
        "rows": rows,
        "shards": SHARDS,
        "repeats": repeats,
        "rows_kept": kept["local, in-process"][0],
        "configurations": summary,
        "notes": [
            (f"{os.cpu_count()} cores: 2 workers can at most halve the steps' time, less whatever else the "
             "machine is running (see load_average)"),
            ("'in shards s' is the time spent inside run_shard_task, summed over shards (the work itself); "
             "'CPU s' misses Ray's workers, which are not children the command waits for"),
        ],
        "spec": spec(Path("SOURCE"), Path("RUN_DIR"), rows, {"name": "EXECUTOR"}),
    }
