"""How `tune_pooling.json` was made: other ways to pool a text's minimal edits, on the tuning
worlds only. For each run directory (made by `measure.py`: runs/tune_6413, runs/tune_6415,
runs/tune_6414), `clip_score` with `edits: world` scores the rows its `strip_boilerplate` step
kept, once, keeping each edit's score (what `curate_clip.score.pooled_margins` is given); every
pooling, temperature and weight is then an AUC computed from those scores:

- ``max``: t - max e (shipped default); ``softmax``: -T log(1 + sum exp((e - t) / T)) (shipped);
- ``logsumexp``: t - T log sum exp(e / T), softmax's penalty for many close edits without its cap at 0;
- ``logmeanexp``: t - T log mean exp(e / T);
- a fixed margin for a text without edits (0 as shipped, or below);
- a mix of the shipped two (a share of ``max`` plus the rest of ``softmax`` at T 0.02).

clip_edit_score = clip_score + weight x margin, as the step computes it. Run from the scratch
folder of `measure.py`:

    python .../records/web_clean/tune_pooling.py runs/tune_6413 runs/tune_6415 runs/tune_6414

EVAL.md's fine-tuning tries: ``--checkpoint W.safetensors --out tries.json`` (their `max` weight 6
and softmax T 0.02 weight 8 figures are the keys with no-edit margin 0).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
POSITIVE = ("faithful", "partial")


def edit_scores(run: Path, checkpoint: str | None = None) -> pl.DataFrame:
    """uid, gt_noise_type, clip_score, the score pooled against (the reading's) and every edit's score."""
    import curate_clip.score as score

    from curate.testing import run_step

    step = next(run.glob("steps/*_strip_boilerplate"))
    table = pl.concat([pl.read_parquet(f) for f in sorted((step / "data").glob("*.parquet"))])
    store = str((run / "store").resolve()) + "/"
    table = table.with_columns(image=pl.struct(shard=pl.lit(store) + pl.col("image").struct.field("shard"),
                                               key=pl.col("image").struct.field("key")))
    real, calls = score.pooled_margins, []

    def keep(rows, scores, own, pooling, temperature):
        start = sys._getframe(1).f_locals["start"]  # _edit_margins' block: own is own[start:start + len]
        calls.append((start, rows + start, scores.copy(), own.copy()))
        return real(rows, scores, own, pooling, temperature)

    score.pooled_margins = keep
    try:
        params = {"edits": "world"} | ({"checkpoint": checkpoint} if checkpoint else {})
        out = run_step("clip_score", table.select("uid", "alt_text", "image", "gt_noise_type"), params,
                       shard_size=len(table)).kept
    finally:
        score.pooled_margins = real
    own = out["clip_score"].to_numpy().astype(np.float64)
    edits: list[list[float]] = [[] for _ in range(out.height)]
    for start, rows, scores, block_own in calls:
        own[start:start + len(block_own)] = block_own  # the reading's score where it reads the text otherwise
        for row, value in zip(rows.tolist(), scores.tolist(), strict=True):
            edits[row].append(value)
    return out.select("uid", "gt_noise_type", "clip_score").with_columns(
        own=pl.Series(own), edits=pl.Series(edits, dtype=pl.List(pl.Float64)))


def margin(own: float, edits: list[float], pooling: str, t: float) -> float:
    e = np.asarray(edits)
    if pooling in ("max", "softmax"):  # the step's own pooling, for one row
        from curate_clip.score import pooled_margins

        return float(pooled_margins(np.zeros(len(e), dtype=np.int64), e, np.array([own]), pooling, t)[0])
    z = e / t
    pooled = z.max() + np.log(np.exp(z - z.max()).sum() / (len(e) if pooling == "logmeanexp" else 1))
    return own - t * pooled


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    from scipy.stats import rankdata

    ranks, p = rankdata(scores), positive.sum()
    return float((ranks[positive].sum() - p * (p + 1) / 2) / (p * (len(positive) - p)))


def grid(table: pl.DataFrame) -> dict[str, float]:
    positive = table["gt_noise_type"].is_in(POSITIVE).to_numpy()
    base, own, edits = table["clip_score"].to_numpy(), table["own"].to_numpy(), table["edits"].to_list()
    settings = ([("max", 0.0)] + [(p, t) for p in ("softmax", "logsumexp") for t in (0.01, 0.02, 0.03, 0.05)]
                + [("logmeanexp", t) for t in (0.01, 0.02, 0.05)])
    out, pooled = {}, {}
    for pooling, t in settings:
        margins = pooled[pooling, t] = np.array([margin(o, e, pooling, t) if e else np.nan
                                                 for o, e in zip(own, edits, strict=True)])
        for fixed in (0.0, -0.01, -0.02, -0.04, -0.08):
            for weight in (6, 8, 10, 12, 16):
                value = auc(base + weight * np.where(np.isnan(margins), fixed, margins), positive)
                out[f"{pooling} T={t} weight={weight} no-edit margin={fixed}"] = round(value, 4)
    for share in (0.25, 0.5, 0.75):  # a mix of the two shipped margins: share x max + the rest x softmax
        margins = share * pooled["max", 0.0] + (1 - share) * pooled["softmax", 0.02]
        for weight in (6, 8, 10, 12):
            value = auc(base + weight * np.nan_to_num(margins), positive)
            out[f"{share} max + {1 - share} softmax T=0.02 weight={weight}"] = round(value, 4)
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", help="other world CLIP weights (EVAL.md's fine-tuning tries)")
    parser.add_argument("--out", type=Path, default=HERE / "tune_pooling.json")
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    runs = args.runs
    results = {run.name: grid(edit_scores(run, args.checkpoint)) for run in runs}
    lowest = {key: min(results[run.name][key] for run in runs) for key in results[runs[0].name]}
    best = sorted(lowest, key=lowest.get, reverse=True)[:10]
    args.out.write_text(json.dumps(
        {"what": "AUC aligned vs misaligned of clip_score + weight x margin per pooling, on the tuning "
                 "worlds; lowest: the lowest of them, best: the 10 settings with the highest lowest",
         "best": {key: lowest[key] for key in best}, "lowest": lowest, "worlds": results}, indent=1) + "\n")
