"""clip_score throughput against a raw open_clip loop over the same images: the step through the
engine's shard code path (image references read through curate.images, a DataLoader, text
embeddings, cosine scores, embeddings written to the sidecar store, Parquet out) against a plain
loop that opens each file with Pillow, preprocesses, and calls encode_image / encode_text. Same
loaded model, same batch size, same threads; the two alternate within each repeat and the scores
must agree.

Default: the shipped world CLIP on CPU (64 px world images). CURATE_BENCH_CLIP_MODEL=ViT-B-32 runs
that architecture with random weights (throughput does not depend on them); the ViT-B/32 figure
on an H100 is for a session with a GPU (CURATE_BENCH_CLIP_DEVICE=cuda).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import polars as pl

from benchmarks.measure import alternate, model_bench, step_versus_raw, tmp_dir, world_dir
from benchmarks.step_harness import StepHarness

ROWS = {"small": 1000, "full": 4000}


def _world_table(rows: int) -> pl.DataFrame:
    from curate_world.generate import generate_world

    world = generate_world(world_dir("clip", f"world-{rows}"), n=rows, seed=11, fault_rate=0.0, dup_fraction=0.0)
    table = pl.read_parquet(world.world_table).select("world_id", "image_path", "alt_text")
    return table.select(
        pl.format("{}", pl.col("world_id").cast(pl.Utf8).str.zfill(6)).alias("uid"),
        pl.col("alt_text"),
        pl.struct(pl.lit(str(world.dir / "images")).alias("shard"),
                  pl.col("world_id").cast(pl.Utf8).str.zfill(6).alias("key")).alias("image"),
        (pl.lit(str(world.dir) + "/") + pl.col("image_path")).alias("path"),
    )


def _raw_loop(clip: Any, paths: list[str], texts: list[str], batch_size: int) -> np.ndarray:
    """What a user would write without curate: open, preprocess, encode, cosine."""
    import contextlib

    import torch
    from PIL import Image

    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if clip.device.startswith("cuda")
                else contextlib.nullcontext())
    scores = []
    for start in range(0, len(paths), batch_size):
        pixels = torch.stack([clip.preprocess(Image.open(p).convert("RGB")) for p in paths[start : start + batch_size]])
        tokens = clip.tokenizer(texts[start : start + batch_size])
        with torch.inference_mode(), autocast:
            image = clip.model.encode_image(pixels.to(clip.device))
            text = clip.model.encode_text(tokens.to(clip.device))
        image = torch.nn.functional.normalize(image.float(), dim=-1)
        text = torch.nn.functional.normalize(text.float(), dim=-1)
        scores.append((image * text).sum(-1).cpu().numpy())
    return np.concatenate(scores)


def run(scale: str) -> dict[str, Any]:
    from curate.shards import iter_shard_files
    from curate_clip.score import ClipScore

    bench = model_bench(ROWS[scale])
    rows, batch_size, repeats, threads = bench.rows, bench.batch_size, bench.repeats, bench.threads
    model = os.environ.get("CURATE_BENCH_CLIP_MODEL", "world-clip-tiny")
    device = os.environ.get("CURATE_BENCH_CLIP_DEVICE", "auto")
    workers = int(os.environ.get("CURATE_BENCH_CLIP_WORKERS", "0"))

    table = _world_table(rows)
    step = ClipScore(ClipScore.Params(model=model, batch_size=batch_size, workers=workers, device=device))
    harness = StepHarness(step, table.drop("path"), tmp_dir("clip"), "clip_score")
    clip = step.clip
    paths, texts = table["path"].to_list(), table["alt_text"].fill_null("").to_list()

    def through_curate() -> np.ndarray:
        return pl.concat([pl.read_parquet(f) for f in iter_shard_files(harness.run())])["clip_score"].to_numpy()

    def raw() -> np.ndarray:
        return _raw_loop(clip, paths, texts, batch_size)

    _raw_loop(clip, paths[:batch_size], texts[:batch_size], batch_size)  # warm up both paths
    seconds, results = alternate({"clip_score step": through_curate, "raw open_clip loop": raw}, repeats)
    tolerance = 2e-2 if clip.device.startswith("cuda") else 1e-3
    difference, ratio, throughput, table = step_versus_raw(rows, seconds, results, "clip_score step",
                                                           "raw open_clip loop", tolerance, "scores")
    return {
        "headline": {
            f"clip_score / raw loop throughput ({model}, {clip.device})": round(ratio, 3),
            "clip_score images/s": round(throughput["clip_score step"], 1),
            "raw loop images/s": round(throughput["raw open_clip loop"], 1),
        },
        "table": table,
        "notes": [
            f"model {clip.name}, device {clip.device}, batch {batch_size}, DataLoader workers {workers}, "
            f"torch threads {threads}, {repeats} alternating repeats, medians; scores agree to {difference:.1e}.",
            "The step's time includes reading image references through curate.images, writing the image and "
            "text embeddings to the EmbeddingStore and the output Parquet; the raw loop does none of that.",
            "The ViT-B/32 throughput on an H100 is left for a session with a GPU: "
            "CURATE_BENCH_CLIP_MODEL=ViT-B-32 CURATE_BENCH_CLIP_DEVICE=cuda CURATE_BENCH_CLIP_WORKERS=8 "
            "python -m benchmarks --only clip --scale full.",
        ],
        "model": clip.name,
        "device": clip.device,
        "rows": rows,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(os.environ.get("SCALE", "small")), indent=2, default=str))
