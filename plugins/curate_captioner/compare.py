"""Compare captioners (and guidance scales) on an unseen world, per row, with 95% bootstrap CIs.

The rows are a world's (both splits) whose scene content no row of the ``exclude`` worlds (the
training worlds) shows, so every scene is unseen. Per row and per captioner:

    attribute_accuracy   every object's shape and color stated, right count, nothing else
    wrong_attribute      mentions a (color, shape) pair the image does not show
    missed_object        leaves out an object's (color, shape)
    hallucinated_entity  names an entity that is not in the image
    entity_retention     (rows whose alt-text names the image's entity) keeps the name
    clip_score           world-CLIP cosine of image and caption
    r_at_1               the caption retrieves its own image (its scene) first among the split's images

Means come with a percentile bootstrap 95% CI over rows (1000 resamples), and each captioner's
difference from the first one with a paired bootstrap CI (same resampled rows for both).
``write`` also keeps every row's values (``ROWS.parquet``: run, world_id, one column per metric),
so any two runs can be paired afterwards (:func:`paired_from_rows`) without decoding again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate_captioner.config import TEMPERATURE, TOP_P

METRICS = ("attribute_accuracy", "wrong_attribute", "missed_object", "hallucinated_entity", "entity_retention",
           "clip_score", "r_at_1")


def row_metrics(texts: Sequence[str], scenes: Sequence[Any], named: Sequence[bool]) -> dict[str, list[float | None]]:
    from curate_world.api import extract_attributes, score_caption

    out: dict[str, list[float | None]] = {m: [] for m in METRICS[:5]}
    for text, scene, names_it in zip(texts, scenes, named, strict=True):
        score = score_caption(text or "", scene)
        out["attribute_accuracy"].append(float(score.pair_precision == 1.0 and score.pair_recall == 1.0 and score.count_error == 0))
        out["wrong_attribute"].append(float(score.pair_precision is not None and score.pair_precision < 1.0))
        out["missed_object"].append(float(score.pair_recall < 1.0))
        out["hallucinated_entity"].append(float(score.entity_hallucinated))
        out["entity_retention"].append(float(scene.entity in extract_attributes(text or "").entities)
                                       if names_it and scene.entity else None)
    return out


def bootstrap(values: Sequence[float | None], baseline: Sequence[float | None] | None = None, *, resamples: int = 1000,
              seed: int = 0) -> dict[str, float] | None:
    """Mean and percentile 95% CI of ``values`` (nulls left out), or of ``values - baseline`` paired by row."""
    keep = [i for i, v in enumerate(values) if v is not None and (baseline is None or baseline[i] is not None)]
    if not keep:
        return None
    data = np.array([values[i] for i in keep], dtype=float)
    if baseline is not None:
        data = data - np.array([baseline[i] for i in keep], dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": round(float(data.mean()), 4), "low": round(float(low), 4), "high": round(float(high), 4), "n": len(data)}


def unseen_rows(world: pl.DataFrame, exclude: Sequence[pl.DataFrame]) -> pl.DataFrame:
    from curate_captioner.data import scene_content

    seen = pl.concat([scene_content(w) for w in exclude]).implode() if exclude else pl.Series([], dtype=pl.Utf8).implode()
    return world.filter(~scene_content(world).is_in(seen))


def clip_features(images: list[Any], texts: list[str] | None = None) -> Any:
    """World-CLIP unit features of images (or of texts when given)."""
    import torch

    from curate_captioner.worldclip import _scorer

    model, preprocess, tokenizer = _scorer()
    parts = []
    with torch.no_grad():
        source = texts if texts is not None else images
        for start in range(0, len(source), 128):
            chunk = source[start : start + 128]
            features = (model.encode_text(tokenizer([t or "" for t in chunk])) if texts is not None
                        else model.encode_image(torch.stack([preprocess(i) for i in chunk])))
            parts.append(torch.nn.functional.normalize(features.float(), dim=-1))
    return torch.cat(parts)


def retrieval(image_features: Any, text_features: Any, content: Sequence[str]) -> tuple[list[float], list[float]]:
    """Per row: the CLIP score of its own pair, and whether its caption ranks an image of its own
    scene content first (identical scenes rendered twice are the same answer)."""
    similarity = text_features @ image_features.T
    best = similarity.argmax(dim=1).tolist()
    own = similarity.diagonal().tolist()
    return own, [float(content[b] == content[i]) for i, b in enumerate(best)]


def compare_world(world_dir: str | Path, runs: Sequence[dict[str, Any]], *, exclude: Sequence[str | Path] = (), rows: int = 600,
                  batch_size: int = 64, seed: int = 0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``runs``: dicts with ``label``, ``model`` and optional ``guidance`` (image scale),
    ``alt_text_guidance``, ``copy_bias``, ``temperature``, ``top_p``, ``best_of`` (world-CLIP
    reranking of that many sampled captions), ``decode_seed`` (default ``seed``) and
    ``prompt_rewrites`` (default the model's). The first run is the baseline of the paired differences."""
    import torch

    from curate_captioner.data import open_images, read_world, scene_content
    from curate_captioner.evaluate import caption_rows
    from curate_captioner.model import Captioner
    from curate_world.api import Scene

    root = Path(world_dir)
    world = read_world(root)
    unseen = unseen_rows(world, [read_world(Path(w)) for w in exclude]).sort("world_id")
    picked = unseen.head(rows)
    scenes = [Scene.from_objects_json(o, b, t) for o, b, t in picked.select("objects", "background", "texture").iter_rows()]
    images = open_images([str(root / p) for p in picked["image_path"]])
    alt = [a or "" for a in picked["alt_text"].to_list()]
    named = picked["alt_mentions_entity"].to_list()
    keys = picked["world_id"].to_list()
    content = scene_content(picked).to_list()
    image_features = clip_features(images)
    log(f"{unseen.height} rows of {world.height} show scenes no excluded world shows; scoring the first {picked.height}")
    per_row: dict[str, dict[str, list[float | None]]] = {}
    timing: dict[str, float] = {}
    loaded: dict[str, Any] = {}
    for run in runs:
        model = loaded.setdefault(run["model"], Captioner.load(run["model"]))
        config = model.config
        if "prompt_rewrites" in run:  # this run only: the model may be shared with other runs
            model.config = config.model_copy(update={"prompt_rewrites": list(run["prompt_rewrites"])})
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                texts = caption_rows(model, images, alt, keys, batch_size=batch_size, seed=run.get("decode_seed", seed),
                                     copy_bias=run.get("copy_bias", config.copy_bias),
                                     temperature=run.get("temperature", TEMPERATURE), top_p=run.get("top_p", TOP_P),
                                     guidance=(run.get("guidance", 1.0), run.get("alt_text_guidance", 1.0)),
                                     best_of=run.get("best_of", 1))
        finally:
            model.config = config
        timing[run["label"]] = round(len(texts) / (time.perf_counter() - started), 1)
        metrics = row_metrics(texts, scenes, named)
        own, hits = retrieval(image_features, clip_features([], texts), content)
        metrics["clip_score"], metrics["r_at_1"] = list(own), list(hits)
        per_row[run["label"]] = metrics
        log(f"{run['label']}: {timing[run['label']]} captions/s; attribute accuracy "
            f"{np.mean([v for v in metrics['attribute_accuracy'] if v is not None]):.4f}")
    base = runs[0]["label"]
    summary = {
        label: {metric: {"value": bootstrap(values[metric], seed=seed),
                         **({"minus_" + base: bootstrap(values[metric], per_row[base][metric], seed=seed)} if label != base else {})}
                for metric in METRICS}
        for label, values in per_row.items()
    }
    return {"world": str(root), "rows": picked.height, "unseen_rows": unseen.height, "exclude": [str(w) for w in exclude], "seed": seed,
            "runs": list(runs), "captions_per_second": timing, "metrics": summary,
            "per_row": {"world_id": keys, "runs": per_row}}


def markdown(result: dict[str, Any]) -> str:
    """A table: each metric's mean [95% CI] per run, and its paired difference from the first."""
    base = result["runs"][0]["label"]
    lines = [f"| run | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for label, metrics in result["metrics"].items():
        cells = []
        for metric in METRICS:
            value = metrics[metric]["value"]
            cell = "–" if value is None else f"{value['mean']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"
            diff = metrics[metric].get("minus_" + base)
            if diff is not None:
                cell += f"<br>Δ {diff['mean']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}]"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


ROWS_FILE = "ROWS.parquet"


def write(result: dict[str, Any], out: Path) -> None:
    """COMPARE.json (means, CIs, paired differences), COMPARE.md (the table) and, when the result
    has them, every row's values in ROWS.parquet."""
    out.mkdir(parents=True, exist_ok=True)
    rows = result.get("per_row")
    (out / "COMPARE.json").write_text(json.dumps({k: v for k, v in result.items() if k != "per_row"}, indent=2) + "\n")
    (out / "COMPARE.md").write_text(markdown(result))
    if rows is not None:
        frames = [pl.DataFrame({"run": [label] * len(rows["world_id"]), "world_id": rows["world_id"],
                                **{m: pl.Series(m, values[m], dtype=pl.Float64) for m in METRICS}})
                  for label, values in rows["runs"].items()]
        pl.concat(frames).write_parquet(out / ROWS_FILE)


def paired_from_rows(rows: pl.DataFrame, run: str, baseline: str, metric: str, *, seed: int = 0) -> dict[str, float] | None:
    """``run`` minus ``baseline`` on ``metric``, paired by world_id, with the bootstrap CI of :func:`bootstrap`."""
    a = rows.filter(pl.col("run") == run).sort("world_id")
    b = rows.filter(pl.col("run") == baseline).sort("world_id")
    if a.height == 0 or b.height == 0 or a["world_id"].to_list() != b["world_id"].to_list():
        raise ValueError(f"runs {run!r} and {baseline!r} do not cover the same rows; have: {sorted(set(rows['run']))}")
    return bootstrap(a[metric].to_list(), b[metric].to_list(), seed=seed)
