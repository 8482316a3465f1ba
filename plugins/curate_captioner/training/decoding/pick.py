"""Pick among saved candidates (``candidates.py``) offline, for N = 2..K: the world-CLIP best (what
``best_of`` does), MBR (the candidate with the most word overlap with the others), and the oracle
(any candidate right: the ceiling of any reranker). Attribute accuracy with paired 95% bootstrap CIs
against BASE's first candidate (the default decoding), overall and on three-object scenes.

    python pick.py BASE.parquet CANDIDATES.parquet [...]
"""
import sys, re
import numpy as np, polars as pl
from curate_captioner.compare import bootstrap
from curate.display import echo

def words(t): return set(re.findall(r"[a-z0-9]+", (t or "").lower()))
def sim(a, b):
    if not a and not b: return 1.0
    return 2 * len(a & b) / (len(a) + len(b))

base = pl.read_parquet(sys.argv[1]).filter(pl.col("k") == 0).sort("row")["attribute_accuracy"].to_list()
for path in sys.argv[2:]:
    df = pl.read_parquet(path).sort("row", "k")
    K = df["k"].max() + 1
    rows = df["row"].max() + 1
    acc = np.array(df["attribute_accuracy"].to_list()).reshape(rows, K)
    clip = np.array(df["clip"].to_list()).reshape(rows, K)
    caps = np.array(df["caption"].to_list(), dtype=object).reshape(rows, K)
    nobj = np.array(df["n_objects"].to_list()).reshape(rows, K)[:, 0]
    echo(f"== {path}: {rows} rows, K={K}; mean single-candidate acc {acc.mean():.4f}; first {acc[:,0].mean():.4f}")
    for N in range(2, K + 1):
        cb = acc[np.arange(rows), clip[:, :N].argmax(1)]
        W = [[words(c) for c in caps[r, :N]] for r in range(rows)]
        mbr_idx = [int(np.argmax([sum(sim(W[r][i], W[r][j]) for j in range(N) if j != i) for i in range(N)])) for r in range(rows)]
        mbr = acc[np.arange(rows), mbr_idx]
        # CLIP among the MBR-consensus ties? combined: clip + mbr z
        orc = acc[:, :N].max(1)
        out = []
        for name, v in (("clip", cb), ("mbr", mbr), ("oracle", orc)):
            d = bootstrap(list(v), list(base))
            d3 = bootstrap([float(x) for x, n in zip(v, nobj) if n == 3], [float(x) for x, n in zip(base, nobj) if n == 3])
            out.append(f"{name} {v.mean():.4f} Δ{d['mean']:+.4f}[{d['low']:+.4f},{d['high']:+.4f}] 3obj Δ{d3['mean']:+.4f}[{d3['low']:+.4f},{d3['high']:+.4f}]")
        echo(f"N={N}: " + " | ".join(out))
    b3 = [x for x, n in zip(base, nobj) if n == 3]
    echo(f"base acc {np.mean(base):.4f}; 3-object rows {len(b3)} base {np.mean(b3):.4f}")
