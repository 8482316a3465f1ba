"""Metadata curation (filter + normalize_text + exact_dedup + sample) through the curate CLI,
against the same pipeline hand-written in Polars: time ratio and peak memory, at 1M and 10M rows.

The input is synthetic web metadata with realistic noise (benchmarks/synthetic.py), generated
once and cached under benchmarks/.data/. Both sides run as subprocesses, alternately, so the
machine's background load hits them alike; each number is the median of the repeats. Both
must keep the same rows before sampling (checked exactly) and sample within binomial tolerance.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from benchmarks import synthetic
from benchmarks.measure import (
    BENCHMARKS_DIR,
    Measurement,
    curate_command,
    data_dir,
    measure,
    median,
    python,
    tmp_dir,
)

SIZES = {"small": (1_000_000,), "full": (1_000_000, 10_000_000)}
REPEATS = {1_000_000: 3, 10_000_000: 2}  # override with CURATE_BENCH_REPEATS
FRACTION = 0.5
SEED = 0
POLARS_SCRIPT = BENCHMARKS_DIR / "metadata_polars.py"

FILTER = ("url LIKE 'http%' AND alt_text IS NOT NULL "
          "AND NOT (lower(url) LIKE '%.svg' OR lower(url) LIKE '%.gif')")


def spec(source: Path, output: Path, run_dir: Path) -> dict[str, Any]:
    """The curate side; benchmarks/metadata_polars.py is the same pipeline in Polars."""
    return {
        "name": "bench_metadata",
        "source": {"format": "parquet", "path": str(source)},
        "steps": [
            {"step": "filter", "name": "http_images", "params": {"where": FILTER}},
            {"step": "normalize_text", "params": {"max_length": 512, "min_length": 5}},
            {"step": "exact_dedup", "params": {"columns": ["url", "alt_text"], "keep": "first"}},
            {"step": "sample", "params": {"fraction": FRACTION, "seed": SEED}},
        ],
        "outputs": [{"format": "parquet", "path": str(output)}],
        # The HTML report is not curation; it would add its own seconds to every run.
        "run": {"dir": str(run_dir), "seed": SEED, "report": False, "fuse_heads": True},
    }


def run_curate(spec_path: Path, run_dir: Path) -> tuple[Measurement, dict[str, Any]]:
    shutil.rmtree(run_dir, ignore_errors=True)
    measured = measure([*curate_command(), "run", str(spec_path), "--quiet", "--no-cache"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    shutil.rmtree(run_dir, ignore_errors=True)  # a 10M-row run keeps every step's shards: GBs
    return measured, manifest


def run_polars(source: Path, output: Path, fraction: float) -> tuple[Measurement, int]:
    output.unlink(missing_ok=True)
    measured = measure([python(), str(POLARS_SCRIPT), str(source), str(output),
                        "--fraction", str(fraction), "--seed", str(SEED)])
    rows = json.loads(measured.stdout.strip().splitlines()[-1])["rows"]
    output.unlink(missing_ok=True)
    return measured, rows


def bench_size(rows: int, repeats: int) -> dict[str, Any]:
    source = synthetic.metadata_table(rows, data_dir("metadata"), seed=SEED)
    work = tmp_dir("metadata", str(rows))
    run_dir = work / "run"
    spec_path = work / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec(source, work / "curate.parquet", run_dir), sort_keys=False))

    # Semantics first: without sampling the Polars script must keep exactly curate's rows.
    _, unsampled = run_polars(source, work / "polars.parquet", 1.0)

    curate_runs: list[Measurement] = []
    polars_runs: list[Measurement] = []
    manifests: list[dict[str, Any]] = []
    polars_rows: list[int] = []
    for _ in range(repeats):  # alternate, so a burst of load from elsewhere hits both sides
        measured, manifest = run_curate(spec_path, run_dir)
        curate_runs.append(measured)
        manifests.append(manifest)
        measured, out = run_polars(source, work / "polars.parquet", FRACTION)
        polars_runs.append(measured)
        polars_rows.append(out)

    steps = {s["label"]: s for s in manifests[-1]["steps"]}
    deduplicated = steps["exact_dedup"]["rows_out"]
    curate_rows = manifests[-1]["outputs"][0]["rows"]
    # Different hashes pick different rows: the two counts are independent Binomial(n, 1/2).
    tolerance = 4 * math.sqrt(2 * deduplicated * FRACTION * (1 - FRACTION))
    checks = {
        "same_rows_before_sampling": unsampled == deduplicated,
        "rows_before_sampling": {"curate": deduplicated, "polars": unsampled},
        "sampled_within_tolerance": abs(curate_rows - polars_rows[-1]) <= tolerance,
        "sampled_rows": {"curate": curate_rows, "polars": polars_rows[-1], "tolerance": round(tolerance)},
    }
    if not checks["same_rows_before_sampling"]:
        raise AssertionError(f"curate and Polars disagree before sampling: {checks['rows_before_sampling']}")
    if not checks["sampled_within_tolerance"]:
        raise AssertionError(f"sampled row counts differ by more than 4 sigma: {checks['sampled_rows']}")

    curate_seconds = median([m.seconds for m in curate_runs])
    polars_seconds = median([m.seconds for m in polars_runs])
    curate_cpu = median([m.cpu_seconds for m in curate_runs])
    polars_cpu = median([m.cpu_seconds for m in polars_runs])
    step_seconds = {
        label: median([next(s for s in m["steps"] if s["label"] == label)["seconds"] for m in manifests])
        for label in steps
    }
    step_seconds["output"] = median([m["outputs"][0]["seconds"] for m in manifests])
    return {
        "rows": rows,
        "repeats": repeats,
        "data": synthetic.describe(source),
        "curate": {
            "seconds": curate_seconds,
            "cpu_seconds": curate_cpu,
            "peak_rss_mb": median([m.peak_rss_mb for m in curate_runs]),
            "runs": [m.facts() for m in curate_runs],
            "step_seconds": step_seconds,
            "funnel": {label: {"rows_in": s["rows_in"], "rows_out": s["rows_out"]} for label, s in steps.items()},
        },
        "polars": {
            "seconds": polars_seconds,
            "cpu_seconds": polars_cpu,
            "peak_rss_mb": median([m.peak_rss_mb for m in polars_runs]),
            "runs": [m.facts() for m in polars_runs],
        },
        "time_ratio": round(curate_seconds / polars_seconds, 2),
        "cpu_ratio": round(curate_cpu / polars_cpu, 2),
        "checks": checks,
    }


def run(scale: str) -> dict[str, Any]:
    override = os.environ.get("CURATE_BENCH_REPEATS")
    only_rows = os.environ.get("CURATE_BENCH_ROWS")  # e.g. 10000000: one size of the scale
    sizes = []
    # CURATE_BENCH_ROWS may also name a size beyond the scale (100000000 on a machine with the disk
    # for it: ~25 GB): run alone, once unless CURATE_BENCH_REPEATS says otherwise.
    wanted = [int(only_rows)] if only_rows and int(only_rows) not in SIZES[scale] else SIZES[scale]
    for rows in wanted:
        if only_rows and rows != int(only_rows):
            continue  # CURATE_BENCH_ROWS names one size of the scale
        size = bench_size(rows, int(override) if override else REPEATS.get(rows, 1))
        # A 10M-row size takes many minutes: keep each one as soon as it is done.
        (tmp_dir("metadata", str(rows)) / "result.json").write_text(json.dumps(size, indent=2))
        sizes.append(size)
    table = []
    for size in sizes:
        for tool in ("curate", "polars"):
            table.append({
                "rows": size["rows"],
                "tool": tool,
                "seconds (median)": round(size[tool]["seconds"], 2),
                "runs": " ".join(f"{r['seconds']:.1f}" for r in size[tool]["runs"]),
                "CPU seconds": round(size[tool]["cpu_seconds"], 1),
                "peak RSS MB": size[tool]["peak_rss_mb"],
                "rows out": size["checks"]["sampled_rows"][tool],
            })
    steps_table = [
        {"rows": size["rows"], **{label: round(s, 2) for label, s in size["curate"]["step_seconds"].items()}}
        for size in sizes
    ]
    headline: dict[str, Any] = {}
    for size in sizes:
        millions = f"{size['rows'] // 1_000_000}M"
        headline[f"time ratio curate/polars at {millions}"] = size["time_ratio"]
        headline[f"CPU-time ratio curate/polars at {millions}"] = size["cpu_ratio"]
        headline[f"peak RSS MB at {millions}: curate / polars"] = (
            f"{size['curate']['peak_rss_mb']:,.0f} / {size['polars']['peak_rss_mb']:,.0f}")
    if len(sizes) > 1:
        headline["curate peak RSS, largest / smallest table"] = round(
            sizes[-1]["curate"]["peak_rss_mb"] / sizes[0]["curate"]["peak_rss_mb"], 2)
    return {
        "headline": headline,
        "table": table,
        "tables": {"curate seconds per step (median)": steps_table},
        "sizes": sizes,
        "spec": spec(Path("SOURCE"), Path("OUTPUT"), Path("RUN_DIR")),
    }
