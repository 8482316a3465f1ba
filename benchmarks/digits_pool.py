"""A user-style image–alt-text pool that is not the world: scikit-learn's bundled handwritten
digits (1797 real 8×8 scans, shipped inside the package: no download) with web-like, noisy
alt-texts, and a labelled eval table of held-out digits.

    python benchmarks/digits_pool.py runs/digits-data        # needs scikit-learn (curate[digits])

writes ``OUT/pool.parquet`` (url, alt_text, image = {shard, key}, and the truth the curation never
reads: digit, alt_label, noise), ``OUT/images/<key>.png`` (32×32 grey), and ``OUT/eval.parquet``
(path, label) with ``OUT/eval/<n>.png``. Of the pool's 1000 distinct images, ``--wrong`` (35 %)
have an alt-text naming another digit and ``--junk`` (10 %) an alt-text naming none (a file name, a
generic phrase); ``--duplicates`` (50) rows repeat an earlier row's url (the base spec's dedup
drops them). specs/experiment_digits.yaml curates and trains on it.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEMPLATES = ("a handwritten {}", "the digit {}", "scan of a handwritten {}", "number {} written by hand",
             "a {} on a postal form", "handwritten digit {}, scanned")
JUNK = ("IMG_{n}.png", "scan {n}", "untitled", "form page {n}", "a handwritten digit", "photo")


def to_image(pixels, size: int = 32):
    from PIL import Image

    grey = Image.fromarray((255 - pixels * 255 / 16).clip(0, 255).astype("uint8"), mode="L")  # ink dark on white
    return grey.resize((size, size), Image.Resampling.BILINEAR)


def make(out: Path, *, pool_size: int = 1000, wrong: float = 0.35, junk: float = 0.10, duplicates: int = 50,
         seed: int = 0) -> dict[str, int]:
    import polars as pl
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = random.Random(seed)
    order = list(range(len(digits.target)))
    rng.shuffle(order)
    pool_ids, eval_ids = order[:pool_size], order[pool_size:]
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    images = str((out / "images").resolve())
    rows = []
    for n, index in enumerate(pool_ids):
        key = f"{n:05d}"
        to_image(digits.images[index]).save(out / "images" / f"{key}.png")
        digit = int(digits.target[index])
        draw = rng.random()
        if draw < wrong:
            label, noise = rng.choice([d for d in range(10) if d != digit]), "wrong"
        elif draw < wrong + junk:
            label, noise = None, "junk"
        else:
            label, noise = digit, "clean"
        text = rng.choice(TEMPLATES).format(WORDS[label]) if label is not None else \
            rng.choice(JUNK).format(n=rng.randrange(1000, 9999))
        rows.append({"url": f"https://forms.example.org/scans/{key}.png", "alt_text": text,
                     "image": {"shard": images, "key": key}, "digit": digit, "alt_label": label, "noise": noise})
    rows += [dict(rows[rng.randrange(len(rows))]) for _ in range(duplicates)]  # re-posted scans
    pl.DataFrame(rows).write_parquet(out / "pool.parquet")
    labels = []
    for n, index in enumerate(eval_ids):
        to_image(digits.images[index]).save(out / "eval" / f"{n:04d}.png")
        labels.append({"path": f"eval/{n:04d}.png", "label": WORDS[int(digits.target[index])]})
    pl.DataFrame(labels).write_parquet(out / "eval.parquet")
    counts = {kind: sum(r["noise"] == kind for r in rows[:pool_size]) for kind in ("clean", "wrong", "junk")}
    return {"pool_rows": len(rows), "distinct": pool_size, "eval": len(labels), **counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--pool-size", type=int, default=1000)
    parser.add_argument("--wrong", type=float, default=0.35)
    parser.add_argument("--junk", type=float, default=0.10)
    parser.add_argument("--duplicates", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(make(args.out, pool_size=args.pool_size, wrong=args.wrong, junk=args.junk, duplicates=args.duplicates,
               seed=args.seed))


if __name__ == "__main__":
    main()
