"""Rerank saved candidates (``candidates.py``) by the world-CLIP scores of each object phrase (the
caption split at commas and 'and', background left out): mean, min, and whole-caption score + min.

    python phrases.py WORLD BASE.parquet CANDIDATES.parquet [...] -- [EXCLUDE_WORLD ...]
"""
import re, sys
from pathlib import Path
import numpy as np, polars as pl, torch
from curate_captioner.compare import unseen_rows, clip_features, bootstrap
from curate_captioner.data import open_images, read_world
from curate.display import echo
args = sys.argv[1:]
cut = args.index("--") if "--" in args else len(args)
root = Path(args[0]); base_path, paths = args[1], args[2:cut]
exclude = [read_world(Path(w)) for w in args[cut + 1:]]
base_df = pl.read_parquet(base_path)
rows = base_df["row"].max() + 1
picked = unseen_rows(read_world(root), exclude).sort("world_id").head(rows)
img = clip_features(open_images([str(root / p) for p in picked["image_path"]]))
def split(c):
    body = re.split(r",? on an? [^,]*background", c or "")[0]
    parts = [p.strip() for p in re.split(r",\s*(?:and\s+)?|\s+and\s+", body) if p.strip()]
    return parts or [c or ""]
base = base_df.filter(pl.col("k") == 0).sort("row")["attribute_accuracy"].to_list()
for path in paths:
    df = pl.read_parquet(path).sort("row", "k"); K = df["k"].max() + 1
    caps = df["caption"].to_list(); acc = np.array(df["attribute_accuracy"].to_list()).reshape(rows, K)
    phr = [split(c) for c in caps]; flat = sorted({p for ps in phr for p in ps})
    feats = clip_features([], flat); idx = {p: i for i, p in enumerate(flat)}
    score_mean = np.zeros(len(caps)); score_min = np.zeros(len(caps))
    for n, ps in enumerate(phr):
        s = (feats[[idx[p] for p in ps]] @ img[n // K]).numpy()
        score_mean[n], score_min[n] = s.mean(), s.min()
    whole = np.array(df["clip"].to_list()).reshape(rows, K)
    for name, sc in (("phrase_mean", score_mean.reshape(rows, K)), ("phrase_min", score_min.reshape(rows, K)),
                     ("whole+min", whole + score_min.reshape(rows, K))):
        for N in (2, 4, K):
            v = acc[np.arange(rows), sc[:, :N].argmax(1)]
            d = bootstrap(list(v), list(base))
            echo(f"{path} {name} N={N}: {v.mean():.4f} Δ{d['mean']:+.4f} [{d['low']:+.4f},{d['high']:+.4f}]")
