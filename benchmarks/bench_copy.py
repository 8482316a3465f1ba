"""copy_embed throughput against a raw torch loop over the same images: the step through the
engine's shard code path (image references read through curate.images, a DataLoader, descriptors
written to the embedding store, Parquet out) against a plain loop that opens each file with
Pillow, prepares it the same way and calls the module. Same loaded model, batch size and
threads; the two alternate within each repeat and their descriptors must agree.

Default: the shipped world copy detector on CPU (64 px world images).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import polars as pl

from benchmarks.bench_clip import _world_table
from benchmarks.measure import alternate, model_bench, step_versus_raw, tmp_dir
from benchmarks.step_harness import StepHarness

ROWS = {"small": 1000, "full": 4000}


def _raw_loop(model: Any, paths: list[str], batch_size: int) -> np.ndarray:
    """What a user would write without curate: open, prepare, embed."""
    import torch
    from PIL import Image

    prepare = model.preparer()
    out = []
    for start in range(0, len(paths), batch_size):
        pixels = torch.stack([prepare(Image.open(p).convert("RGB")) for p in paths[start:start + batch_size]])
        out.append(model.embed(pixels))
    return np.concatenate(out)


def run(scale: str) -> dict[str, Any]:
    from curate.embeddings import EmbeddingStore
    from curate_dedup.copy_embed import CopyEmbed

    bench = model_bench(ROWS[scale], "COPY")
    rows, batch_size, repeats, threads = bench.rows, bench.batch_size, bench.repeats, bench.threads

    table = _world_table(rows)
    step = CopyEmbed(CopyEmbed.Params(batch_size=batch_size, device=os.environ.get("CURATE_BENCH_COPY_DEVICE", "auto")))
    harness = StepHarness(step, table.drop("path"), tmp_dir("copy"), "copy_embed")
    model = step.copy_model
    paths = table["path"].to_list()

    def through_curate() -> np.ndarray:
        return EmbeddingStore(harness.run() / "artifacts", "copy").lookup(table["uid"])

    _raw_loop(model, paths[:batch_size], batch_size)  # warm up
    seconds, results = alternate({"copy_embed step": through_curate,
                                  "raw torch loop": lambda: _raw_loop(model, paths, batch_size)}, repeats)
    # the store keeps float16
    difference, ratio, throughput, table = step_versus_raw(rows, seconds, results, "copy_embed step",
                                                           "raw torch loop", 2e-3, "descriptors")
    return {
        "headline": {
            f"copy_embed / raw loop throughput ({model.device})": round(ratio, 3),
            "copy_embed images/s": round(throughput["copy_embed step"], 1),
            "raw loop images/s": round(throughput["raw torch loop"], 1),
        },
        "table": table,
        "notes": [
            f"model {model.name}, device {model.device}, batch {batch_size}, torch threads {threads}, "
            f"{repeats} alternating repeats, medians; descriptors agree to {difference:.1e} (float16 store).",
            "The step's time includes reading image references through curate.images, writing the "
            "descriptors to the EmbeddingStore and the output Parquet; the raw loop does none of that.",
        ],
        "model": model.name,
        "rows": rows,
    }
