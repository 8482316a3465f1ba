"""image_filter's cost per row on each path: ``process_shard`` on shards of 10,000 rows in memory,
as a fused group runs it (reading and writing the shards, the engine's cost for any step, left
out). Judged by the download's ``original_width`` / ``original_height`` columns
(``sizes: auto`` after a download: no image read), by each image's header in the download's
webdataset tars and in a folder of files (a local table), and with ``decode: true`` (every image
decoded as later steps decode it). Images: 256 x 256 JPEGs (the download's default ``image_size``)
of noise, quality 95, ~75 KB each. Microseconds per row are medians over the repeats.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.measure import data_dir, median, tmp_dir

ROWS = {"small": 5_000, "full": 20_000}  # images; the column path runs 50 times as many rows
SHARD = 10_000
SIDE = 256


def _images(rows: int) -> tuple[Path, Path, list[str]]:
    """``rows`` JPEGs as the download step stores them (tars of SHARD members) and as a folder."""
    from PIL import Image

    where = data_dir("image_filter", f"jpeg{SIDE}-{rows}")
    tars, folder = where / "tars", where / "folder"
    keys = [f"u{index:08d}" for index in range(rows)]
    if (where / "done").exists():
        return tars, folder, keys
    tars.mkdir(exist_ok=True)
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    archive = None
    for index, key in enumerate(keys):
        if index % SHARD == 0:
            if archive is not None:
                archive.close()
            archive = tarfile.open(tars / f"{index // SHARD:05d}.tar", "w")
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (SIDE, SIDE, 3), np.uint8)).save(buffer, "JPEG", quality=95)
        data = buffer.getvalue()
        info = tarfile.TarInfo(f"{key}.jpg")
        info.size = len(data)
        assert archive is not None
        archive.addfile(info, io.BytesIO(data))
        (folder / f"{key}.jpg").write_bytes(data)
    assert archive is not None
    archive.close()
    (where / "done").write_text("")
    return tars, folder, keys


def _table(keys: list[str], shards: list[str], sizes: bool) -> pl.DataFrame:
    columns: dict[str, Any] = {
        "uid": keys,
        "image": pl.Series([{"shard": shard, "key": key} for shard, key in zip(shards, keys, strict=True)],
                           dtype=pl.Struct({"shard": pl.Utf8, "key": pl.Utf8})),
    }
    if sizes:
        columns["original_width"] = pl.Series([SIDE] * len(keys), dtype=pl.Int32)
        columns["original_height"] = pl.Series([SIDE] * len(keys), dtype=pl.Int32)
    return pl.DataFrame(columns)


def run(scale: str) -> dict[str, Any]:
    import time

    from curate_download.imagefilter import ImageFilter

    from curate.images import clear_cache
    from curate.step import StepContext

    rows = int(os.environ.get("CURATE_BENCH_ROWS", ROWS[scale]))
    repeats = int(os.environ.get("CURATE_BENCH_REPEATS", "3"))
    tars, folder, keys = _images(rows)
    in_tars = [str(tars / f"{index // SHARD:05d}.tar") for index in range(rows)]
    in_folder = [str(folder)] * rows
    column_rows = rows * 50
    many = [f"u{index:08d}" for index in range(column_rows)]
    paths = {
        "columns (auto, after a download)": (ImageFilter(), _table(many, ["never-read"] * column_rows, True),
                                             column_rows),
        "header, download's tars": (ImageFilter(ImageFilter.Params(sizes="image")),
                                    _table(keys, in_tars, False), rows),
        "header, folder of files": (ImageFilter(ImageFilter.Params(sizes="image")),
                                    _table(keys, in_folder, False), rows),
        "decode, download's tars": (ImageFilter(ImageFilter.Params(sizes="image", decode=True)),
                                    _table(keys, in_tars, False), rows),
    }
    ctx = StepContext(run_dir=tmp_dir("image_filter"), label="image_filter", seed=0,
                      artifacts=tmp_dir("image_filter", "artifacts"), extras={"store_dir": None})

    def timed(name: str) -> Any:
        step, table, count = paths[name]
        shards = [table.slice(start, SHARD) for start in range(0, count, SHARD)]

        def once() -> int:
            clear_cache()  # each repeat indexes its tars again, as a fresh worker does
            kept = 0
            for index, shard in enumerate(shards):
                ctx.shard = index
                kept += step.process_shard(shard, ctx)["_drop_reason"].null_count()
            if kept != count:
                raise RuntimeError(f"{name}: kept {kept} of {count} rows, all of them normal images")
            return kept
        return once

    wall: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):  # alternating, so drift in the machine's load hits every path alike
        for name in paths:
            once = timed(name)
            started, started_cpu = time.perf_counter(), time.process_time()
            once()
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
    table = [{"path": name, "rows": paths[name][2],
              "µs per row (CPU)": round(median(cpu[name]) / paths[name][2] * 1e6, 2),
              "µs per row (wall)": round(median(wall[name]) / paths[name][2] * 1e6, 2),
              "wall seconds per repeat": [round(v, 3) for v in wall[name]]} for name in paths]
    return {"headline": {f"CPU µs per row, {row['path']}": row["µs per row (CPU)"] for row in table},
            "table": table,
            "notes": [f"{rows:,} JPEGs of {SIDE} x {SIDE}, {SHARD:,} rows a shard; one Python thread; CPU "
                      "time moves less than wall time with a busy neighbour"]}
