"""A source that grows: the same spec re-run on the same run directory after a day's file lands.

A world (held-out scenes, 10 % faulty URLs) is served on loopback and cut into Parquet files of
equal size. Day 0 runs the quickstart-like pipeline (download, normalize_text, filter,
exact_dedup, clip_score, copy_embed, dedup_semantic, realign, score_captions, mix; Parquet and
WebDataset out) over the first three files; day 1 adds the fourth and runs again on the same run
directory; day 2 touches a file without changing it. A clean run over day 1's four files, in a
new run directory, is the reference: the re-run's outputs must be byte-identical to it (checked),
and its cost is compared with the re-run's. The same two days again with the download step's
`image_store` (a per-URL cache outside the run) show what it saves. Per step: seconds (manifest)
and CPU seconds (user + system of curate and the processes it waited for, between the step's
start and end, measured in the process that runs the engine), and whether it was reused.

    python benchmarks/bench_incremental.py [small|full]   # or python -m benchmarks --only incremental
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__" and __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from benchmarks.measure import measure, python, tmp_dir, world_dir

ROWS = {"small": 320, "full": 2000}  # four files of a quarter each (plus a fifth, unused, spare)
FILES = 4

STEPS = [
    {"step": "download", "params": {"image_size": 64, "resize_mode": "no", "timeout": 2,
                                    "allowed_hosts": ["127.0.0.1"], "drop_failed": True, "threads": 16}},
    {"step": "normalize_text", "params": {"max_length": 300}},
    {"step": "filter", "params": {"where": "length(alt_text) >= 3", "reason": "too_short"}},
    {"step": "exact_dedup", "params": {"columns": ["url"]}},
    {"step": "clip_score"},
    {"step": "copy_embed"},
    {"step": "dedup_semantic", "params": {"embedding": "copy", "keep": "max", "order_by": "clip_score"}},
    {"step": "realign"},
    {"step": "clip_score", "name": "score_captions",
     "params": {"texts": ["caption_realigned"], "store_embeddings": False}},
    {"step": "mix", "params": {"strategy": "score_gated", "options": {"margin": 0.08},
                               "synthetic_score": "clip_score_caption_realigned"}},
]


def _cpu() -> float:
    own, waited = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime


def drive(spec: str, run_dir: str, out: str) -> None:
    """Run ``spec`` on ``run_dir`` as ``curate run`` does, writing each step's seconds, CPU
    seconds and rows to ``out`` (JSON), with a digest of every output file."""
    import warnings

    from curate.commands.shared import _load_and_plan
    from curate.engine import Engine

    class Observer:
        def __init__(self) -> None:
            self.steps: dict[str, dict[str, float]] = {}

        def step_started(self, planned: Any, total: Any, cached: bool) -> None:
            self.steps.setdefault(planned.label, {"cpu": _cpu(), "wall": time.perf_counter()})

        def rows_done(self, planned: Any, rows: int) -> None:
            pass

        def step_finished(self, planned: Any, record: dict[str, Any]) -> None:
            step = self.steps[planned.label]
            step["cpu"] = round(_cpu() - step["cpu"], 2)
            step["wall"] = round(time.perf_counter() - step["wall"], 2)

    plan, pm = _load_and_plan(spec, run_dir, False, ())
    observer = Observer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manifest = Engine(plan, pm, observer).run()
    steps = [{"label": s["label"], "rows_in": s.get("rows_in"), "rows_out": s.get("rows_out"),
              "seconds": s.get("seconds"), "cpu": observer.steps.get(s["label"], {}).get("cpu"),
              "cached": s.get("cached")} for s in manifest["steps"]]
    outputs = {}
    for output in manifest["outputs"]:
        path = Path(output["path"])
        for file in sorted([path] if path.is_file() else path.rglob("*")):
            if file.is_file():
                outputs[str(file.relative_to(path.parent))] = hashlib.sha256(file.read_bytes()).hexdigest()
    origin = None
    download = next(s for s in manifest["steps"] if s["label"] == "download")
    if download.get("complete"):
        import duckdb

        con = duckdb.connect(str(Path(run_dir) / "curate.duckdb"), read_only=True)
        columns = {row[0] for row in con.sql('DESCRIBE "01_download"').fetchall()}
        if "image_origin" in columns:
            origin = dict(con.sql('SELECT coalesce(image_origin, \'none\'), count(*) FROM "01_download" '
                                  "GROUP BY 1 ORDER BY 1").fetchall())
    Path(out).write_text(json.dumps({"steps": steps, "outputs": outputs, "image_origin": origin}))


def _spec(path: Path, data: str, image_store: str | None) -> None:
    steps = json.loads(json.dumps(STEPS))
    if image_store:
        steps[0]["params"]["image_store"] = image_store
    path.write_text(yaml.safe_dump({
        "name": path.stem, "source": {"format": "parquet", "path": data}, "steps": steps,
        "outputs": [{"format": "webdataset", "path": "shards"}, {"format": "parquet", "path": "curated.parquet"}],
        "run": {"dir": f"runs/{path.stem}", "seed": 0, "report": False}}, sort_keys=False))


def _run(scratch: Path, spec: str, run_dir: str, name: str) -> dict[str, Any]:
    out = scratch / f"{name}.json"
    measured = measure([python(), str(Path(__file__).resolve()), "--drive", spec, run_dir, str(out)], cwd=scratch)
    result = json.loads(out.read_text())
    result.update(name=name, seconds=round(measured.seconds, 2), cpu_seconds=round(measured.cpu_seconds, 2))
    return result


def run(scale: str = "full") -> dict[str, Any]:
    import polars as pl

    from curate_world.generate import generate_world
    from curate_world.server import serve_world

    rows = ROWS[scale]
    world = world_dir("incremental", f"world-{rows}")
    if not (world / "world.parquet").exists():
        generate_world(world, n=rows, seed=7, fault_rate=0.1, scenes="heldout")
    scratch = tmp_dir("incremental", scale)
    shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    runs: list[dict[str, Any]] = []
    with serve_world(world, slow_seconds=3.0) as server:
        table = pl.read_parquet(world / "world.parquet", columns=["url_path", "alt_text"]).select(
            (pl.lit(server.base_url) + pl.col("url_path")).alias("url"), "alt_text")
        size = rows // FILES
        pool = scratch / "pool"
        pool.mkdir()
        for i in range(FILES):
            table.slice(i * size, size).write_parquet(pool / f"day-{i:02d}.parquet")
        for variant, store in (("plain", None), ("image_store", "images")):
            data = scratch / f"data-{variant}"
            data.mkdir()
            for i in range(FILES - 1):
                shutil.copy2(pool / f"day-{i:02d}.parquet", data)
            spec = scratch / f"{variant}.yaml"
            _spec(spec, data.name, store)
            runs.append(_run(scratch, spec.name, f"runs/{variant}", f"{variant}: day 0 (3 files)"))
            shutil.copy2(pool / f"day-{FILES - 1:02d}.parquet", data)
            runs.append(_run(scratch, spec.name, f"runs/{variant}", f"{variant}: day 1 (+1 file), re-run"))
            if variant == "plain":
                runs.append(_run(scratch, spec.name, "runs/clean", "plain: clean run over day 1's files"))
                if runs[-1]["outputs"] != runs[-2]["outputs"]:
                    raise RuntimeError("the re-run's outputs differ from a clean run's over the same files")
                runs.append(_run(scratch, spec.name, f"runs/{variant}", "plain: nothing changed, re-run"))
                os.utime(data / "day-00.parquet")
                runs.append(_run(scratch, spec.name, f"runs/{variant}", "plain: a file touched, re-run"))
    labels = [s["label"] for s in runs[0]["steps"]]
    table_rows = []
    for result in runs:
        computed = [s for s in result["steps"] if not s["cached"]]
        line: dict[str, Any] = {"run": result["name"], "seconds": result["seconds"], "CPU s": result["cpu_seconds"],
                                "steps run": f"{len(computed)} of {len(result['steps'])}",
                                "rows in, summed over the steps run": sum(s["rows_in"] or 0 for s in computed)}
        if result.get("image_origin"):
            line["images fetched from the web"] = result["image_origin"].get("web", 0)
        table_rows.append(line)
    per_step = [{"step": label, **{r["name"]: ("reused" if s["cached"] else
                                               f"{s['seconds']} s / {s['cpu']} CPU s ({s['rows_in']} rows)")
                                   for r in runs for s in r["steps"] if s["label"] == label}}
                for label in labels]
    day0, day1, clean = runs[0], runs[1], runs[2]

    def rows_run(result: dict[str, Any]) -> int:
        return sum(s["rows_in"] or 0 for s in result["steps"] if not s["cached"])

    return {
        "headline": {
            "steps the day 1 re-run reused (a 4th file added to 3)": sum(s["cached"] for s in day1["steps"]),
            "rows the day 1 re-run computed / a clean run's over the same files": round(rows_run(day1) / rows_run(clean), 2),
            "day 1 re-run CPU s / day 0's": round(day1["cpu_seconds"] / day0["cpu_seconds"], 2),
            "day 1 re-run outputs byte-identical to the clean run's": day1["outputs"] == clean["outputs"],
        },
        "table": table_rows,
        "tables": {"seconds / CPU seconds per step": per_step},
        "notes": [f"{rows} world rows in {FILES} files of {rows // FILES}; load average at the end "
                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (CPU seconds move less than seconds "
                  "with busy neighbours; torch's threads spin under contention, so model steps' CPU varies)"],
        "runs": runs,
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--drive"]:
        drive(*sys.argv[2:5])
        sys.exit(0)
    from benchmarks.run import discover, report, run_one, save

    scale = sys.argv[1] if len(sys.argv) > 1 else "full"
    benchmark = next(b for b in discover() if b.name == "incremental")
    entry = run_one(benchmark, scale)
    print(report(entry))
    print(f"written to {save(entry)}")
    sys.exit(0 if entry["status"] == "ok" else 1)
