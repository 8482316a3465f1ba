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
import math
import re
from pathlib import Path


def concepts() -> tuple[list[str], list[str]]:
    from curate_world.vocab import COLORS, SHAPES

    return list(SHAPES), list(COLORS)


def make_pool(out: Path, seed: int, n: int, skew: float, entity_rate: float, scenes: str = "any",
              inits: int = 1) -> dict[str, int]:
    import polars as pl

    from curate_world.api import generate_world

    world = out / f"world-{seed}"
    generate_world(world, n=n, seed=seed, fault_rate=0.0, concept_skew=skew, entity_rate=entity_rate, eval_n=0,
                   realign_fraction=0.0, scenes=scenes)
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
    for run in run_seeds(seed, inits):  # the same world under the run seeds 10*seed + i (inits > 1)
        pool.write_parquet(out / f"pool-{run}.parquet")
    shapes, colors = concepts()
    texts = pool["alt_text"].str.to_lowercase().to_list()
    return {name: sum(bool(re.search(rf"\b{name}\b", t)) for t in texts) for name in [*shapes, *colors]} | {
        "rows": len(texts)}


def run_seeds(world: int, inits: int) -> list[int]:
    """The experiment seeds that train on world ``world`` when each world is trained ``inits`` times
    (its own initialization, sample order and balance/sample draws each): 10*world + i, i < inits.
    One init is the world seed itself."""
    if inits == 1:
        return [world]
    if not 1 <= inits <= 10:
        raise SystemExit(f"--inits {inits}: between 1 and 10 (run seed = 10 * world seed + init)")
    return [10 * world + i for i in range(inits)]


def make_eval(out: Path, seed: int, n: int, entity_rate: float, scenes: str = "any") -> dict[str, int]:
    import polars as pl

    from curate_world.api import generate_world

    world = out / "eval"
    generate_world(world, n=50, seed=seed, fault_rate=0.0, entity_rate=entity_rate, eval_n=n, realign_fraction=0.0,
                   scenes=scenes)
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


def per_run(run_dirs: list[Path], a: str, b: str, only: set[int] | None = None) -> dict[int, dict[str, dict[str, float]]]:
    """``values[seed][variant]``: every seed (of ``only``, if given) finished by both variants in any of
    ``run_dirs``."""
    values: dict[int, dict[str, dict[str, float]]] = {}
    for run_dir in run_dirs:
        for path in sorted(run_dir.glob("seed-*")):
            seed = int(path.name.removeprefix("seed-"))
            if only is not None and seed not in only:
                continue
            if not ((path / a / "result.json").is_file() and (path / b / "result.json").is_file()):
                continue
            if seed in values:
                raise SystemExit(f"seed {seed} finished in two of the run directories {[str(d) for d in run_dirs]}")
            values[seed] = {}
            for variant in (a, b):
                r = json.loads((path / variant / "result.json").read_text())
                row = {"rows": r["rows"]}
                for part in ("", "_head", "_tail"):
                    row[f"zeroshot{part}"] = (r[f"shapes.acc1{part}"] + r[f"colors.acc1{part}"]) / 2
                    row[f"shapes{part}"] = r[f"shapes.acc1{part}"]
                    row[f"colors{part}"] = r[f"colors.acc1{part}"]
                row.update(pool_facts(path / variant))
                values[seed][variant] = row
    if not values:
        raise SystemExit(f"no seed finished both '{a}' and '{b}' in {[str(d) for d in run_dirs]}")
    return values


def summarize(run_dirs: Path | list[Path], a: str = "balanced", b: str = "unbalanced", per_world: bool = False,
              only: set[int] | None = None) -> dict:
    """Per world: overall zero-shot (mean of the shape and colour sets' acc1), head and tail (the
    same over each set's groups), each set's own numbers, and the pool's tail shares; the paired
    gaps a − b over worlds with 95 % t intervals (curate_train.gaps.paired). The seed is the world,
    or with ``per_world`` run seed 10*w + i is run i of world w (``--inits``): a world's values are
    the mean of its runs (every world needs as many), and with 2+ runs a world ``init_sd`` is the sd
    of one run's gap around its world's mean (pooled over worlds: the noise of initialization, sample
    order and draws within a world), to compare with the sd of the world means' gaps (``gaps``)."""
    import statistics

    from curate_train.gaps import paired

    run_dirs = [run_dirs] if isinstance(run_dirs, Path) else list(run_dirs)
    runs = per_run(run_dirs, a, b, only)
    worlds: dict[int, list[int]] = {}
    for seed in sorted(runs):
        worlds.setdefault(seed // 10 if per_world else seed, []).append(seed)
    inits = len(next(iter(worlds.values())))
    if any(len(s) != inits for s in worlds.values()):
        raise SystemExit(f"worlds with unequal numbers of finished runs (world: run seeds): {worlds}; "
                         f"summarize whole layers (the same runs per world)")
    metrics = list(runs[min(runs)][a])
    per = {v: {w: {m: statistics.fmean(runs[s][v][m] for s in seeds) for m in metrics}
               for w, seeds in worlds.items()} for v in (a, b)}
    order = sorted(worlds)
    variants = {v: {m: {"mean": round(statistics.fmean(per[v][w][m] for w in order), 2),
                        "by_world": [round(per[v][w][m], 2) for w in order]} for m in metrics} for v in (a, b)}
    gaps = {m: paired([per[a][w][m] - per[b][w][m] for w in order]) for m in metrics if m != "rows"}
    summary = {"run_dirs": [str(d) for d in run_dirs], "worlds": order, "inits": inits,
               "run_seeds": {w: worlds[w] for w in order}, "a": a, "b": b, "variants": variants, "gaps": gaps}
    if inits > 1:
        gap = {m: {w: [runs[s][a][m] - runs[s][b][m] for s in worlds[w]] for w in order} for m in metrics}
        summary["init_sd"] = {m: round(math.sqrt(statistics.fmean(statistics.variance(g) for g in gap[m].values())), 2)
                              for m in metrics if m != "rows"}
        summary["gaps_by_run"] = {m: {w: [round(d, 2) for d in gap[m][w]] for w in order}
                                  for m in metrics if m != "rows"}
    summary["metrics"] = ("zeroshot = mean of shapes.acc1 and colors.acc1 (8 and 10 classes); _head/_tail: the same "
                          "over the images whose true class is in the first/second half of the vocabulary, ranked "
                          "among all classes; tail_share_*: % of the pool's shape/colour matches that name a tail "
                          "concept; every value a world's mean over its runs; init_sd: the sd of a gap between the "
                          "runs of one world (pooled variance over worlds), i.e. the sd of one run's gap "
                          "around its world's mean")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--summarize", type=Path, nargs="+",
                        help="finished run directories (their seeds together): write the paired summary")
    parser.add_argument("--out", dest="summary_out", type=Path, help="with --summarize: the JSON file to write")
    parser.add_argument("--seeds", default="0,1,2,3,4,5", help="world seeds, one pool each")
    parser.add_argument("--n", type=int, default=6000, help="rows per world (about 95 %% are train)")
    parser.add_argument("--skew", type=float, default=2.0, help="concept_skew of every world")
    parser.add_argument("--entity-rate", type=float, default=0.0,
                        help="share of scenes with a logo (0: none, so no logo's fixed shape and colour "
                             "lifts a tail concept)")
    parser.add_argument("--eval-seed", type=int, default=1000)
    parser.add_argument("--eval-n", type=int, default=2000)
    parser.add_argument("--scenes", default="any", choices=["any", "train"],
                        help="the pools' scenes (train: the training partition of the scene space)")
    parser.add_argument("--eval-scenes", default="any", choices=["any", "heldout"],
                        help="the eval world's scenes (heldout: none a training world can show)")
    parser.add_argument("--inits", type=int, default=1,
                        help="runs per world: also write world s's pool as pool-<10*s+i>.parquet, i < INITS, "
                             "for the experiment seeds 10*s+i")
    parser.add_argument("--per-world", action="store_true",
                        help="with --summarize: run seed 10*w+i is a run of world w; average each world's runs")
    parser.add_argument("--runs", help="with --summarize: only these run seeds (comma-separated), e.g. whole layers")
    args = parser.parse_args()
    if args.summarize:
        only = {int(s) for s in args.runs.split(",")} if args.runs else None
        summary = summarize(args.summarize, per_world=args.per_world, only=only)
        text = json.dumps(summary, indent=2) + "\n"
        if args.summary_out:
            args.summary_out.write_text(text)
        print(text)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    shapes, colors = concepts()
    (args.out / "entries.txt").write_text("\n".join([*shapes, *colors]) + "\n")
    counts = {"skew": args.skew, "n": args.n, "entity_rate": args.entity_rate, "scenes": args.scenes,
              "eval_scenes": args.eval_scenes, "inits": args.inits,
              **make_eval(args.out, args.eval_seed, args.eval_n, args.entity_rate, args.eval_scenes), "seeds": {}}
    for seed in (int(s) for s in args.seeds.split(",")):
        counts["seeds"][seed] = make_pool(args.out, seed, args.n, args.skew, args.entity_rate, args.scenes,
                                          args.inits)
        print(seed, counts["seeds"][seed], flush=True)
    (args.out / "counts.json").write_text(json.dumps(counts, indent=2) + "\n")


if __name__ == "__main__":
    main()
