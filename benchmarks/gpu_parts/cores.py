"""The engine's speedup from 1 to 2 (and 4) cores on the device's quiet CPU cores.

Issue 16 wants the CPU-bound shard steps ≥ 1.8× faster on 2 cores than on 1. The 2-core machine
this project develops on is shared (loads of 2–9), so its `benchmarks --only cores` numbers are
noisy; the lent device has 16 cores the GPU parts leave idle. This part runs the `metadata`
benchmark's spec (filter, normalize_text, exact_dedup, sample) at 1M rows through `curate run`
pinned with `taskset` to 1, 2 and 4 of the highest-numbered cores, alternating, as
`benchmarks/bench_cores.py` does, and reports the speedups of the shard steps, the table steps and
the whole run. Needs duckdb (the engine's table steps) and taskset: without them it is skipped.

    python -m benchmarks.gpu_parts cores --smoke       # here: 20k rows, 1 and 2 cores
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

SECONDS = 75
ROWS, SMOKE_ROWS = 1_000_000, 20_000


def _cores(count: int, available: list[int]) -> str:
    return ",".join(str(c) for c in available[-count:])


def run(out: Path, seconds: float, smoke: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        import duckdb
    except ImportError as error:
        return {"skipped": f"duckdb cannot be imported here ({error}): the engine's table steps need it"}
    if shutil.which("taskset") is None:
        return {"skipped": "no taskset on this machine"}
    available = sorted(os.sched_getaffinity(0))
    counts = [c for c in ((1, 2) if smoke else (1, 2, 4)) if c <= len(available)]
    if len(counts) < 2:
        return {"skipped": f"needs at least 2 cores, this process may use {len(available)}"}

    import yaml

    from benchmarks import synthetic
    from benchmarks.bench_cores import SHARD_STEPS, TABLE_STEPS, run_once
    from benchmarks.bench_metadata import SEED, spec

    rows = SMOKE_ROWS if smoke else ROWS
    work = out / "cores"
    work.mkdir(parents=True, exist_ok=True)
    source = synthetic.metadata_table(rows, work / "data", seed=SEED)
    made = time.perf_counter() - started
    run_dir = work / "run"
    spec_path = work / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec(source, work / "out.parquet", run_dir), sort_keys=False))
    runs: dict[int, list[dict[str, Any]]] = {count: [] for count in counts}
    result: dict[str, Any] = {"rows": rows, "duckdb": duckdb.__version__, "cores_used": {
        count: _cores(count, available) for count in counts}, "data_seconds": round(made, 1), "runs": runs}
    one_round = 0.0
    for repeat in range(1 if smoke else 3):  # alternate, so anything else on the machine hits every core count alike
        if repeat and time.perf_counter() - started + 1.3 * one_round > seconds:
            break
        round_started = time.perf_counter()
        for count in counts:
            runs[count].append(run_once(_cores(count, available), spec_path, run_dir))
        one_round = time.perf_counter() - round_started
    shutil.rmtree(work / "out.parquet", ignore_errors=True)

    def best(count: int, key: str) -> float:
        return min(r[key] for r in runs[count])

    def best_step(count: int, label: str) -> float:
        return min(r["steps"][label] for r in runs[count])

    one = counts[0]
    def ratio(count: int, key: str) -> float:
        return round(best(one, key) / best(count, key), 2)

    result["speedup"] = {
        f"{one}->{count} cores": {
            "shard steps (filter, normalize_text, sample)": ratio(count, "shard_steps"),
            "table steps (source, exact_dedup)": ratio(count, "table_steps"),
            **{label: round(best_step(one, label) / best_step(count, label), 2)
               for label in (*SHARD_STEPS, *TABLE_STEPS)},
            "whole run": ratio(count, "seconds"),
        }
        for count in counts[1:]
    }
    result["goal"] = "shard steps >= 1.8x from 1 to 2 cores (issue 16)"
    result["repeats"] = len(runs[one])
    return result
