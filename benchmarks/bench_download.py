"""The download step against a plain img2dataset.download call on the same loopback URL list.

A world (20 % faulty URLs: 404, 500, slow, truncated, not an image, oversized, redirects, noai) is
served on loopback; `curate run` with one download step and a script calling
`img2dataset.download` with the same settings (2 processes x 64 threads, parts of 1000, 256 px,
3 s timeout) each fetch every URL once, from a fresh server. Reported: wall and CPU seconds of
both commands, the download step's own seconds, and the throughput ratio raw/curate (1.0: as fast
as img2dataset alone). Checks that both stored the same images.

    python benchmarks/bench_download.py [small|full]    # standalone; or python -m benchmarks --only download
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

if __name__ == "__main__" and __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl
import yaml

from benchmarks.measure import Measurement, curate_command, measure, python, tmp_dir, world_dir

ROWS = {"small": 1000, "full": 5000}
SETTINGS = {"image_size": 256, "resize_mode": "border", "timeout": 3, "retries": 0}
PROCESSES, THREADS, PER_PART = 2, 64, 1000
SLOW_SECONDS = 10.0

RAW_SCRIPT = """
import json, sys
{prelude}
import img2dataset

if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        img2dataset.download(**json.load(handle))
"""


def _world(rows: int) -> Path:
    from curate_world.generate import generate_world

    return generate_world(world_dir("download", f"world-{rows}"), n=rows, seed=0, fault_rate=0.2).dir


def _urls(world: Path, base_url: str, path: Path) -> pl.DataFrame:
    table = pl.read_parquet(world / "world.parquet", columns=["url_path", "alt_text"]).select(
        (pl.lit(base_url) + pl.col("url_path")).alias("url"), "alt_text")
    table.write_parquet(path)
    return table


# What curate's worker does in img2dataset's processes: skip two optional, unused imports. Top
# level, so that the processes img2dataset spawns (which re-run this script) skip them too.
SKIP_OPTIONAL = 'sys.modules.setdefault("torch", None); sys.modules.setdefault("ray", None)'


def _raw(world: Path, scratch: Path, tuned: bool) -> tuple[Measurement, int]:
    from curate_world.server import serve_world

    name = "raw-tuned" if tuned else "raw"
    out = scratch / name
    job = {"url_list": str(scratch / "raw-urls.parquet"), "input_format": "parquet", "url_col": "url",
           "output_folder": str(out), "output_format": "webdataset", "processes_count": PROCESSES,
           "thread_count": THREADS, "number_sample_per_shard": PER_PART, "extract_exif": False,
           "compute_hash": "sha256", **SETTINGS}
    (scratch / f"{name}.json").write_text(json.dumps(job))
    (scratch / f"{name}.py").write_text(RAW_SCRIPT.format(prelude=SKIP_OPTIONAL if tuned else ""))
    with serve_world(world, slow_seconds=SLOW_SECONDS) as server:
        _urls(world, server.base_url, scratch / "raw-urls.parquet")
        result = measure([python(), str(scratch / f"{name}.py"), str(scratch / f"{name}.json")], cwd=scratch,
                         env={"NO_ALBUMENTATIONS_UPDATE": "1"})
    stored = 0
    for tar in out.glob("*.tar"):
        with tarfile.open(tar) as archive:
            stored += sum(name.endswith(".jpg") for name in archive.getnames())
    return result, stored


def _curate(world: Path, scratch: Path) -> tuple[Measurement, dict[str, Any], int]:
    from curate_world.server import serve_world

    spec = {
        "name": "bench-download",
        "source": {"path": "urls.parquet"},
        "steps": [{"step": "download", "params": {
            **SETTINGS, "allow_private_networks": True, "processes": PROCESSES, "threads": THREADS,
            "samples_per_shard": PER_PART}}],
        "run": {"dir": "run", "report": False},
    }
    (scratch / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with serve_world(world, slow_seconds=SLOW_SECONDS) as server:
        _urls(world, server.base_url, scratch / "urls.parquet")
        result = measure([*curate_command(), "run", "spec.yaml", "--quiet", "--no-cache"], cwd=scratch)
    manifest = json.loads((scratch / "run" / "manifest.json").read_text())
    record = manifest["steps"][1]
    rows = pl.concat([pl.read_parquet(f) for f in sorted(Path(record["path"]).glob("data/shard-*.parquet"))])
    return result, record, int((rows["status"] == "success").sum())


def run(scale: str = "full") -> dict[str, Any]:
    rows = ROWS[scale]
    world = _world(rows)
    scratch = tmp_dir("download", scale)
    # img2dataset alone first: it pays for a cold page cache
    raw, raw_stored = _raw(world, scratch, tuned=False)
    ours, record, ours_stored = _curate(world, scratch)
    tuned, tuned_stored = _raw(world, scratch, tuned=True)
    for stored in (raw_stored, tuned_stored):
        if abs(stored - ours_stored) > max(2, rows // 200):  # a loaded machine may time out a few
            raise RuntimeError(f"img2dataset stored {stored} images, curate {ours_stored}: not the same work")

    def line(tool: str, result: Measurement, stored: int, **more: Any) -> dict[str, Any]:
        return {"tool": tool, "rows": rows, "seconds": round(result.seconds, 2),
                "CPU seconds": round(result.cpu_seconds, 2), "images stored": stored,
                "images/s": round(stored / result.seconds, 1), **more}

    return {
        "headline": {
            f"throughput ratio curate/img2dataset at {rows} URLs (end to end)": round(raw.seconds / ours.seconds, 3),
            "same, download step only": round(raw.seconds / record["seconds"], 3),
            "against img2dataset with the same import skips": round(tuned.seconds / ours.seconds, 3),
        },
        "table": [
            line("img2dataset.download", raw, raw_stored),
            line("curate run (download step)", ours, ours_stored, **{"step seconds": record["seconds"]}),
            line("img2dataset.download, torch/ray skipped", tuned, tuned_stored),
        ],
        "notes": [
            "ratio = img2dataset seconds / curate seconds: above 1, curate is faster",
            ("curate's worker keeps img2dataset's processes from importing torch and ray (optional "
             "imports it never uses here); the last line gives img2dataset the same skip, so its ratio "
             "is curate's own overhead"),
            f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        ],
        "step": {k: record.get(k) for k in ("rows_in", "rows_out", "seconds", "shard_seconds")},
    }


if __name__ == "__main__":
    from benchmarks.run import discover, report, run_one, save

    scale = sys.argv[1] if len(sys.argv) > 1 else "full"
    benchmark = next(b for b in discover() if b.name == "download")
    entry = run_one(benchmark, scale)
    print(report(entry))
    print(f"written to {save(entry)}")
    sys.exit(0 if entry["status"] == "ok" else 1)
