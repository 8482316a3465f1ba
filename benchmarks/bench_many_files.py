"""A Parquet source of many small files (a bucket of img2dataset outputs, a crawl written file by
file) through `curate run` — the source read in place and a row filter, written to Parquet —
against the same job in Polars (a lazy scan of the folder, the filter, a streaming sink),
alternating. Rows out must agree. Reports wall and CPU seconds and their ratios, per layout.

Until 2026-12-07 the source step of 2,000 files of 10 rows took 16 s: the in-place read numbered
each row's file with a CASE over every file name, read each footer four times and listed the
folder four times, and DuckDB's per-file batches came as one frame each.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from benchmarks.measure import curate_command, data_dir, measure, median, python, tmp_dir

# (files, rows per file)
LAYOUTS = {"small": [(2_000, 10)], "full": [(2_000, 10), (10_000, 10), (2_000, 500)]}
REPEATS = {"small": 3, "full": 3}
WHERE = "length(alt_text) >= 12"

POLARS_JOB = """
import sys, polars as pl
source, out = sys.argv[1], sys.argv[2]
pl.scan_parquet(source + "/*.parquet").filter(pl.col("alt_text").str.len_chars() >= 12) \\
    .sink_parquet(out)
"""


def make_files(files: int, rows: int) -> Path:
    folder = data_dir("many_files", f"{files}x{rows}")
    done = folder / ".done"
    if done.exists():
        return folder
    for index in range(files):
        start = index * rows
        pl.DataFrame({
            "url": [f"https://example.com/{index}/{i}.jpg" for i in range(start, start + rows)],
            "alt_text": [f"photo {i} of a {'red blue green'.split()[i % 3]} thing" for i in range(start, start + rows)],
        }).write_parquet(folder / f"part-{index:06d}.parquet")
    done.write_text("")
    return folder


def spec(source: Path, out: Path, run_dir: Path) -> dict[str, Any]:
    return {"name": "many_files", "source": {"path": str(source)},
            "steps": [{"step": "filter", "params": {"where": WHERE, "reason": "short"}}],
            "outputs": [{"format": "parquet", "path": str(out)}],
            "run": {"dir": str(run_dir), "report": False}}


def run(scale: str) -> dict[str, Any]:
    repeats = int(os.environ.get("CURATE_BENCH_REPEATS", REPEATS[scale]))
    table, headline = [], {}
    for files, rows in LAYOUTS[scale]:
        source = make_files(files, rows)
        work = tmp_dir("many_files", f"{files}x{rows}")
        run_dir, out, polars_out = work / "run", work / "out.parquet", work / "polars.parquet"
        spec_path = work / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(spec(source, out, run_dir), sort_keys=False))
        job = work / "polars_job.py"
        job.write_text(POLARS_JOB)
        runs: dict[str, list[Any]] = {"curate": [], "polars": []}
        for _ in range(repeats):  # alternate, so load from elsewhere hits both alike
            shutil.rmtree(run_dir, ignore_errors=True)
            runs["curate"].append(measure([*curate_command(), "run", str(spec_path), "--quiet", "--no-cache"]))
            runs["polars"].append(measure([python(), str(job), str(source), str(polars_out)]))
        kept = pl.read_parquet(out).height
        if kept != pl.read_parquet(polars_out).height:
            raise RuntimeError(f"rows out differ: curate {kept}, polars {pl.read_parquet(polars_out).height}")
        shutil.rmtree(run_dir, ignore_errors=True)
        wall = {k: median([m.seconds for m in v]) for k, v in runs.items()}
        cpu = {k: median([m.cpu_seconds for m in v]) for k, v in runs.items()}
        name = f"{files} files x {rows} rows"
        table.append({"layout": name, "rows out": kept, "curate s": round(wall["curate"], 2),
                      "polars s": round(wall["polars"], 2), "curate CPU s": round(cpu["curate"], 2),
                      "polars CPU s": round(cpu["polars"], 2),
                      "peak RSS curate MB": median([m.peak_rss_mb for m in runs["curate"]])})
        headline[f"wall ratio curate/polars, {name}"] = round(wall["curate"] / wall["polars"], 2)
        headline[f"CPU ratio curate/polars, {name}"] = round(cpu["curate"] / cpu["polars"], 2)
    return {"headline": headline, "table": table}


