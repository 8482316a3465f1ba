"""How well the CLIP score separates true alt-text from noise, on a held-out world.

Positives: faithful and partial alt-texts (true, if incomplete). Negatives: wrong_attribute,
unrelated, boilerplate, empty. AUC overall and for positives against each negative type.
Images are read straight from the generated world (no download needed to measure the model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

POSITIVE = ("faithful", "partial")
NEGATIVE = ("wrong_attribute", "unrelated", "boilerplate", "empty")


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability a random positive outscores a random negative (ties count half)."""
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    scores = np.concatenate([positive, negative])
    ranks = _average_ranks(scores)
    rank_sum = ranks[: len(positive)].sum()
    return float((rank_sum - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def score_world(world_dir: Path, checkpoint: str | None = None, batch_size: int = 256) -> pl.DataFrame:
    import torch
    from PIL import Image

    from curate_clip.models import WORLD_MODEL, load_clip

    clip = load_clip(WORLD_MODEL, checkpoint=checkpoint, device="cpu")
    table = pl.read_parquet(world_dir / "world.parquet").select("world_id", "image_path", "alt_text", "noise_type")
    scores = []
    for start in range(0, table.height, batch_size):
        chunk = table.slice(start, batch_size)
        pixels = torch.stack([clip.preprocess(Image.open(world_dir / p).convert("RGB")) for p in chunk["image_path"]])
        tokens = clip.tokenizer([t or "" for t in chunk["alt_text"].to_list()])
        with torch.inference_mode():
            image = torch.nn.functional.normalize(clip.model.encode_image(pixels), dim=-1)
            text = torch.nn.functional.normalize(clip.model.encode_text(tokens), dim=-1)
        scores.append((image * text).sum(-1).numpy())
    return table.with_columns(pl.Series("clip_score", np.concatenate(scores)))


def evaluate(n: int = 2000, seed: int = 2000, checkpoint: str | None = None, workdir: Path | None = None,
             scenes: str = "heldout") -> dict[str, Any]:
    """AUCs on a fresh world of ``n`` rows; ``scenes: heldout`` (default) shows only scenes the
    shipped models never saw (``curate_world.partition``); ``any`` is how it was measured until
    2026-12-04 (scenes the CLIP's training generators drew too)."""
    import tempfile

    from curate_world.api import generate_world

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        world = generate_world(Path(tmp) / "world", n=n, seed=seed, fault_rate=0.0, dup_fraction=0.0,
                               scenes=scenes)
        scored = score_world(world.dir, checkpoint)
    positive = scored.filter(pl.col("noise_type").is_in(POSITIVE))["clip_score"].to_numpy()
    negative = scored.filter(pl.col("noise_type").is_in(NEGATIVE))["clip_score"].to_numpy()
    per_type = {}
    for kind in NEGATIVE:
        values = scored.filter(pl.col("noise_type") == kind)["clip_score"].to_numpy()
        per_type[kind] = round(auc(positive, values), 4)
    means = {k: round(float(v), 4) for k, v in
             scored.group_by("noise_type").agg(pl.col("clip_score").mean()).iter_rows()}
    return {"world": {"n": n, "seed": seed, "scenes": scenes}, "auc": round(auc(positive, negative), 4),
            "auc_by_negative_type": per_type, "mean_score_by_noise_type": dict(sorted(means.items()))}
