"""Scoring semantic dedup against a generated world's planted near-duplicates.

    python -m curate_dedup.worldeval RUN_DIR [--step dedup_semantic] [--out eval.json]

RUN_DIR is a finished run of world → download → clip_score → dedup_semantic. The rows the dedup
step saw (its input: ``uid``, ``gt_dup_group``, ``gt_description``) and the embeddings it used
give the truth and the data; the step's own kept/dropped tables give its verdict at the spec's
eps, and the precision/recall curve over eps reruns the same pair finding and grouping code.

Definitions (only rows with an embedding count; a failed download has nothing to compare):

- a *true pair* is two rows of one planted group (``gt_dup_group``); ``content`` truth also
  counts two rows whose scenes have identical content (equal ``gt_description``): the world
  samples scenes independently, so a few distinct scenes are the same picture by chance;
- a *predicted pair* is two rows the dedup put in one duplicate group (``dup_group``);
- pair precision = true predicted pairs / predicted pairs, pair recall = true predicted
  pairs / true pairs. Groups are judged through their pairs, so merging two planted groups or
  splitting one costs precision or recall in proportion to the pairs it gets wrong;
- ``links``: the similar pairs found before grouping, and how many join two rows of one planted
  group (one wrong link can merge two groups: link precision shows where that comes from).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.embeddings import EmbeddingStore
from curate.runstore import read_manifest
from curate.shards import iter_dropped_files, iter_shard_files
from curate_dedup.groups import components
from curate_dedup.semantic import DedupSemanticParams, find_pairs
from curate_dedup.vectors import lookup

EPS_GRID = (0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.10, 0.12, 0.15, 0.20, 0.25, 0.30)


def pair_counts(predicted: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    """Pairs within predicted groups, within true groups, and within both (labels per row)."""
    frame = pl.DataFrame({"p": predicted, "t": truth})

    def pairs(*keys: str) -> int:
        sizes = frame.group_by(list(keys)).len()["len"].cast(pl.Int64)
        return int((sizes * (sizes - 1) // 2).sum())

    return {"predicted": pairs("p"), "true": pairs("t"), "both": pairs("p", "t")}


def scores(counts: dict[str, int]) -> dict[str, float]:
    both, predicted, true = counts["both"], counts["predicted"], counts["true"]
    return {"precision": round(both / predicted, 4) if predicted else 1.0,
            "recall": round(both / true, 4) if true else 1.0}


def truth_labels(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """Row labels for each notion of truth: equal label = duplicates; singletons get their own."""
    n = frame.height
    planted = frame["gt_dup_group"].to_numpy(allow_copy=True).astype(np.float64)
    planted_label = np.where(np.isnan(planted), -1 - np.arange(n), np.nan_to_num(planted)).astype(np.int64)
    content_label = frame["gt_description"].rank("dense").cast(pl.Int64).to_numpy()
    # Content truth includes the planted groups (a planted group is one scene, one description).
    return {"planted": planted_label, "content": content_label}


def evaluate(frame: pl.DataFrame, vectors: np.ndarray, base: dict[str, Any],
             eps_grid: tuple[float, ...] = EPS_GRID) -> list[dict[str, Any]]:
    """The curve: for each algorithm and eps, pair precision/recall under both truths."""
    truths = truth_labels(frame)
    curve = []
    for algorithm in ("knn", "semdedup"):
        for eps in eps_grid:
            params = DedupSemanticParams(**{**base, "algorithm": algorithm, "eps": eps})
            found = find_pairs(vectors, params, "cpu")
            labels = components(frame.height, found.first, found.second)
            point: dict[str, Any] = {"algorithm": algorithm, "eps": eps, "threshold": round(1 - eps, 4)}
            for name, truth in truths.items():
                counts = pair_counts(labels, truth)
                point[name] = {**scores(counts), **counts}
            # The links themselves, before grouping: how many join true duplicates.
            pairs = np.unique(np.stack([found.first, found.second], axis=1), axis=0) if found.first.size else None
            true_links = int((truths["planted"][pairs[:, 0]] == truths["planted"][pairs[:, 1]]).sum()) if pairs is not None else 0
            links = 0 if pairs is None else len(pairs)
            point["links"] = {"links": links, "true_links": true_links,
                              "precision": round(true_links / links, 4) if links else 1.0}
            curve.append(point)
    return curve


def separability(frame: pl.DataFrame, vectors: np.ndarray, block: int = 2048) -> dict[str, Any]:
    """Can any threshold work? Cosine of planted pairs against each row's nearest neighbour that
    is not a duplicate (different content), and how often a planted row's nearest neighbour is
    in its own group. When the first overlaps the second, the embedding is the limit, not the
    dedup."""
    truths = truth_labels(frame)
    planted, content = truths["planted"], truths["content"]
    x = vectors.astype(np.float32)
    nearest_other = np.empty(len(x), dtype=np.float32)
    nearest = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), block):
        sims = x[start:start + block] @ x.T
        rows = np.arange(start, min(start + block, len(x)))
        sims[rows - start, rows] = -np.inf
        nearest[rows] = sims.argmax(axis=1)
        sims[content[rows][:, None] == content[None, :]] = -np.inf
        nearest_other[rows] = sims.max(axis=1)
    first, second = [], []
    for members in pl.DataFrame({"g": planted}).with_row_index().group_by("g").agg("index")["index"]:
        members = members.to_numpy()
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                first.append(members[a])
                second.append(members[b])
    pair_cos = np.einsum("ij,ij->i", x[first], x[second]) if first else np.zeros(0, np.float32)
    in_group = np.flatnonzero(np.bincount(planted - planted.min())[planted - planted.min()] > 1)

    def quantiles(values: np.ndarray) -> dict[str, float]:
        if not values.size:
            return {}
        return {f"p{q}": round(float(np.percentile(values, q)), 4) for q in (1, 5, 50, 95, 99)}

    return {
        "planted_pair_cosine": quantiles(pair_cos),
        "nearest_non_duplicate_cosine": quantiles(nearest_other),
        "planted_rows_nearest_in_group": round(float(np.mean(planted[nearest[in_group]] == planted[in_group])), 4)
        if in_group.size else None,
    }


def step_verdict(frame: pl.DataFrame, step_dir: Path) -> dict[str, Any]:
    """Scores of the groups the step itself wrote (kept and dropped rows carry dup_group)."""
    parts = [pl.read_parquet(p).select("uid", "dup_group") for p in iter_shard_files(step_dir)]
    parts += [pl.read_parquet(p).select("uid", "dup_group") for p in iter_dropped_files(step_dir)
              if "dup_group" in pl.read_parquet_schema(p)]
    written = pl.concat(parts)
    joined = frame.select("uid").with_row_index("_pos").join(written, on="uid", how="left").sort("_pos")
    group = joined["dup_group"].to_numpy(allow_copy=True).astype(np.float64)
    predicted = np.where(np.isnan(group), -1 - np.arange(frame.height), np.nan_to_num(group)).astype(np.int64)
    out = {}
    for name, truth in truth_labels(frame).items():
        counts = pair_counts(predicted, truth)
        out[name] = {**scores(counts), **counts}
    return out


def run_inputs(run_dir: Path, label: str) -> tuple[pl.DataFrame, np.ndarray, dict[str, Any], Path]:
    manifest = read_manifest(run_dir)
    records = manifest["steps"]
    index = next(i for i, r in enumerate(records) if r["label"] == label)
    record, upstream = records[index], records[index - 1]
    table = pl.concat([pl.read_parquet(p).select("uid", "gt_dup_group", "gt_description")
                       for p in iter_shard_files(Path(upstream["path"]))])
    source = record["summary"]["embeddings_from"]
    store_dir = next(Path(r["path"]) for r in records if r["label"] == source)
    store = EmbeddingStore.of_step(store_dir, record["params"].get("embedding", "image"))
    vectors, present = lookup(store, table["uid"])
    keep = np.flatnonzero(present)
    return table[keep], vectors[keep], record, Path(record["path"])


def dedup_verdict(run_dir: Path, step: str = "dedup_semantic") -> dict[str, Any]:
    """The step's own groups scored against the planted groups and equal content (pairs)."""
    frame, _, _, step_dir = run_inputs(Path(run_dir), step)
    return step_verdict(frame, step_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--step", default="dedup_semantic", help="label of the dedup_semantic step")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    frame, vectors, record, step_dir = run_inputs(args.run_dir, args.step)
    base = {k: v for k, v in record["params"].items() if k in DedupSemanticParams.model_fields
            and k not in ("algorithm", "eps", "device", "threads")}
    result = {
        "run_dir": str(args.run_dir),
        "rows_with_embedding": frame.height,
        "planted_groups": int(frame["gt_dup_group"].drop_nulls().n_unique()),
        "model": record["summary"].get("model"),
        "step": {"params": record["params"], "summary": record["summary"],
                 "scores": step_verdict(frame, step_dir)},
        "separability": separability(frame, vectors),
        "curve": evaluate(frame, vectors, base),
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text if not args.out else markdown(result))
    return 0


def markdown(result: dict[str, Any]) -> str:
    lines = ["| algorithm | eps | cosine > | precision (planted) | recall (planted) | precision (content) | recall (content) |",
             "|---|---|---|---|---|---|---|"]
    for p in result["curve"]:
        lines.append(f"| {p['algorithm']} | {p['eps']} | {p['threshold']} | {p['planted']['precision']:.3f} | "
                     f"{p['planted']['recall']:.3f} | {p['content']['precision']:.3f} | {p['content']['recall']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
