"""The pools and eval tables of the metadata-balancing closed loop (specs/experiment_metadata_balance.yaml):
one long-tailed world per seed (``concept_skew``: the k-th shape and colour in vocab order is drawn
with weight 1/k^s), its train split as a parquet pool, one uniform eval split shared by every seed,
and the metadata list (the world's shapes and colours).

    python benchmarks/metadata_world.py runs/metadata-world --seeds 0,1,2,3,4,5 --n 6000 --skew 2.0
    python benchmarks/metadata_world.py --summarize runs/metadata-loop --out RESULT.json  # after the run

writes, under OUT:

- ``pool-<seed>.parquet``: uid, url, alt_text, image = {shard, key} (world seed ``seed``, train split,
  no download faults) and the truth the curation never reads (``noise_type``);
- ``world-<seed>/``: that world (images, world.parquet);
- ``entries.txt``: the metadata list, the 8 shapes then the 10 colours (vocab order);
- ``eval/`` and ``eval-shapes.parquet``, ``eval-colors.parquet`` (path, label): the clean eval split
  of a world of its own (``--eval-seed``, ``--eval-n`` images, uniform over shapes and colours: the
  tail is as present as the head), zero-shot over the 8 shapes and over the 10 colours;
- ``counts.json``: per seed, how many train alt-texts name each shape and colour (the head/tail
  the skew made).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def concepts() -> tuple[list[str], list[str]]:
    from curate_world.vocab import COLORS, SHAPES

    return list(SHAPES), list(COLORS)


def make_pool(out: Path, seed: int, n: int, skew: float, entity_rate: float) -> dict[str, int]:
    import polars as pl

    from curate_world.api import generate_world

    world = out / f"world-{seed}"
    generate_world(world, n=n, seed=seed, fault_rate=0.0, concept_skew=skew, entity_rate=entity_rate, eval_n=0,
                   realign_fraction=0.0)
    pairs = pl.read_parquet(world / "world.parquet").filter(pl.col("split") == "train")
    images = str((world / "images").resolve())
    key = pl.col("world_id").cast(pl.Utf8).str.zfill(6)
    pool = pairs.select(
        pl.format("w{}-{}", pl.lit(seed), key).alias("uid"),
        pl.format("https://world-{}.example{}", pl.lit(seed), pl.col("url_path")).alias("url"),
        "alt_text",
        pl.struct(pl.lit(images).alias("shard"), key.alias("key")).alias("image"),
        "noise_type",
    )
    pool.write_parquet(out / f"pool-{seed}.parquet")
    shapes, colors = concepts()
    texts = pool["alt_text"].str.to_lowercase().to_list()
    return {name: sum(bool(re.search(rf"\b{name}\b", t)) for t in texts) for name in [*shapes, *colors]} | {
        "rows": len(texts)}


def make_eval(out: Path, seed: int, n: int, entity_rate: float) -> dict[str, int]:
    import polars as pl

    from curate_world.api import generate_world

    world = out / "eval"
    generate_world(world, n=50, seed=seed, fault_rate=0.0, entity_rate=entity_rate, eval_n=n, realign_fraction=0.0)
    table = pl.read_parquet(world / "eval.parquet")
    path = pl.format("eval/{}", pl.col("image_path"))
    table.select(path.alias("path"), pl.col("label_shape").alias("label")).write_parquet(out / "eval-shapes.parquet")
    table.select(path.alias("path"), pl.col("label_color").alias("label")).write_parquet(out / "eval-colors.parquet")
    return {"eval": len(table)}


HEAD_TAIL = {"shapes": 4, "colors": 5}  # the first half of each vocabulary (skew order) is the head


def pool_facts(folder: Path) -> dict[str, float]:
    """The share of a variant's entry matches that are tail shapes / tail colours, in the rows it
    trained on (the last step's output, read back from the run's manifest)."""
    import polars as pl

    from curate.shards import iter_shard_files

    manifest = json.loads((folder / "curate" / "manifest.json").read_text())
    rows = pl.concat([pl.read_parquet(f, columns=["metadata_entries"])
                      for f in iter_shard_files(Path(manifest["steps"][-1]["path"]))])
    ids = rows["metadata_entries"].explode().drop_nulls().to_list()
    shapes = [i for i in ids if i < 8]
    colors = [i for i in ids if i >= 8]
    return {"tail_share_shapes": round(100 * sum(i >= HEAD_TAIL["shapes"] for i in shapes) / len(shapes), 2),
            "tail_share_colors": round(100 * sum(i - 8 >= HEAD_TAIL["colors"] for i in colors) / len(colors), 2)}


def summarize(run_dir: Path, a: str = "balanced", b: str = "unbalanced") -> dict:
    """Per seed: overall zero-shot (mean of the shape and colour sets' acc1), head and tail (the
    same over each set's groups), each set's own numbers, and the pool's tail shares; the paired
    gaps a − b with 95 % t intervals (curate_train.gaps.paired)."""
    from curate_train.gaps import paired

    seeds = sorted(int(p.name.removeprefix("seed-")) for p in run_dir.glob("seed-*")
                   if (p / a / "result.json").is_file() and (p / b / "result.json").is_file())
    per: dict[str, dict[int, dict[str, float]]] = {a: {}, b: {}}
    for seed in seeds:
        for variant in (a, b):
            folder = run_dir / f"seed-{seed}" / variant
            r = json.loads((folder / "result.json").read_text())
            values = {"rows": r["rows"]}
            for part in ("", "_head", "_tail"):
                values[f"zeroshot{part}"] = (r[f"shapes.acc1{part}"] + r[f"colors.acc1{part}"]) / 2
                values[f"shapes{part}"] = r[f"shapes.acc1{part}"]
                values[f"colors{part}"] = r[f"colors.acc1{part}"]
            values.update(pool_facts(folder))
            per[variant][seed] = values
    metrics = list(per[a][seeds[0]])
    variants = {v: {m: {"mean": round(sum(per[v][s][m] for s in seeds) / len(seeds), 2),
                        "by_seed": [round(per[v][s][m], 2) for s in seeds]} for m in metrics} for v in (a, b)}
    gaps = {m: paired([per[a][s][m] - per[b][s][m] for s in seeds]) for m in metrics if m != "rows"}
    return {"run_dir": str(run_dir), "seeds": seeds, "a": a, "b": b, "variants": variants, "gaps": gaps,
            "metrics": "zeroshot = mean of shapes.acc1 and colors.acc1 (8 and 10 classes); _head/_tail: the same "
                       "over the images whose true class is in the first/second half of the vocabulary; "
                       "tail_share_*: % of the pool's shape/colour matches that name a tail concept"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--summarize", type=Path, help="a finished run directory: write the paired summary")
    parser.add_argument("--out", dest="summary_out", type=Path, help="with --summarize: the JSON file to write")
    parser.add_argument("--seeds", default="0,1,2,3,4,5", help="world seeds, one pool each")
    parser.add_argument("--n", type=int, default=6000, help="rows per world (about 95 %% are train)")
    parser.add_argument("--skew", type=float, default=2.0, help="concept_skew of every world")
    parser.add_argument("--entity-rate", type=float, default=0.0,
                        help="share of scenes with a logo (0: none, so no logo's fixed shape and colour "
                             "lifts a tail concept)")
    parser.add_argument("--eval-seed", type=int, default=1000)
    parser.add_argument("--eval-n", type=int, default=2000)
    args = parser.parse_args()
    if args.summarize:
        summary = summarize(args.summarize)
        text = json.dumps(summary, indent=2) + "\n"
        if args.summary_out:
            args.summary_out.write_text(text)
        print(text)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    shapes, colors = concepts()
    (args.out / "entries.txt").write_text("\n".join([*shapes, *colors]) + "\n")
    counts = {"skew": args.skew, "n": args.n, "entity_rate": args.entity_rate, 
              **make_eval(args.out, args.eval_seed, args.eval_n, args.entity_rate), "seeds": {}}
    for seed in (int(s) for s in args.seeds.split(",")):
        counts["seeds"][seed] = make_pool(args.out, seed, args.n, args.skew, args.entity_rate)
        print(seed, counts["seeds"][seed], flush=True)
    (args.out / "counts.json").write_text(json.dumps(counts, indent=2) + "\n")


if __name__ == "__main__":
    main()
