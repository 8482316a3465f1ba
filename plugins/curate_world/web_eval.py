"""Re-measure the world CLIP and the realignment captioner on a web-styled world, overall and per
web style; or, with ``--run``, measure what a pipeline run produced.

    python -m curate_world.web_eval WORLD_DIR [--checkpoint PATH] [--captioner [--split val]] [--out result.json]
    python -m curate_world.web_eval --run RUN_DIR [--out result.json]

``--run`` reads a finished run of a world spec (``specs/eval_heldout.yaml``): the world CLIP's
scores of the downloaded images (the ``clip_score`` step, every downloaded row), the realigned
captions (the ``realign`` step: the captioner saw the downloaded copies, after dedup) and the
dedup step's groups against the planted ones (``curate_dedup.api.dedup_verdict``). Every figure
comes with the rows it rests on and a 95 % confidence interval: Wilson for proportions, a
percentile bootstrap (positives and negatives resampled apart) for AUCs.

WORLD_DIR is a world made by ``curate world generate … --web-style web`` (README, "Web-style
evaluation worlds"). Positives and negatives are by ``noise_type`` (faithful, partial against
wrong_attribute, unrelated, boilerplate, empty), which styling leaves alone; each style's AUC
compares the positives and negatives that carry that style. Needs the clip extra (curate_clip).
``--captioner`` adds the captioner's metrics (``curate_captioner.evaluate.score_texts``: attribute
accuracy, entity retention…) of its realigned captions on the split's rows, per style.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from curate_world.webstyle import STYLES


def clip_auc_by_style(world_dir: Path, checkpoint: str | None = None) -> dict[str, Any]:
    import polars as pl
    from curate_clip.api import NEGATIVE, POSITIVE, auc, score_world

    table = pl.read_parquet(world_dir / "world.parquet")
    if "styles" not in table.columns:
        table = table.with_columns(pl.lit([], dtype=pl.List(pl.String)).alias("styles"))
    scored = score_world(world_dir, checkpoint).join(table.select("world_id", "styles"), on="world_id")

    def measure(frame: pl.DataFrame) -> dict[str, Any]:
        positive = frame.filter(pl.col("noise_type").is_in(POSITIVE))["clip_score"].to_numpy()
        negative = frame.filter(pl.col("noise_type").is_in(NEGATIVE))["clip_score"].to_numpy()
        return {"auc": round(auc(positive, negative), 4), "positives": len(positive), "negatives": len(negative)}

    return {
        "world": str(world_dir),
        "all": measure(scored),
        "unstyled": measure(scored.filter(pl.col("styles").list.len() == 0)),
        "styled": measure(scored.filter(pl.col("styles").list.len() > 0)),
        "by_style": {s: measure(scored.filter(pl.col("styles").list.contains(s))) for s in STYLES},
    }


def captioner_by_style(world_dir: Path, model: str = "world", split: str = "val", seed: int = 0) -> dict[str, Any]:
    import polars as pl
    import torch
    from curate_captioner.api import Captioner, caption_rows, load_split, score_texts

    world = pl.read_parquet(world_dir / "world.parquet")
    if "styles" not in world.columns:
        world = world.with_columns(pl.lit([], dtype=pl.List(pl.String)).alias("styles"))
    rows, scenes, images = load_split(world_dir, world, split)
    alt = [a or "" for a in rows["alt_text"].to_list()]
    named, styles = rows["alt_mentions_entity"].to_list(), rows["styles"].to_list()
    captioner = Captioner.load(model)
    with torch.inference_mode():
        captions = caption_rows(captioner, images, alt, rows["world_id"].to_list(), batch_size=64, seed=seed,
                                copy_bias=captioner.config.copy_bias)

    def measure(pick: list[int]) -> dict[str, Any] | None:
        if not pick:
            return None
        result = score_texts([captions[i] for i in pick], [scenes[i] for i in pick], [named[i] for i in pick],
                             [alt[i] for i in pick])
        return {"rows": len(pick), **result}

    every = range(len(alt))
    return {
        "split": split,
        "model": captioner.name,
        "all": measure(list(every)),
        "unstyled": measure([i for i in every if not styles[i]]),
        "styled": measure([i for i in every if styles[i]]),
        "by_style": {s: measure([i for i in every if s in styles[i]]) for s in STYLES},
    }


def wilson(successes: int, rows: int, z: float = 1.959964) -> list[float] | None:
    """Wilson score interval of a proportion (95 % by default)."""
    if rows == 0:
        return None
    p = successes / rows
    centre = (p + z * z / (2 * rows)) / (1 + z * z / rows)
    half = z * ((p * (1 - p) / rows + z * z / (4 * rows * rows)) ** 0.5) / (1 + z * z / rows)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def proportion(successes: int, rows: int) -> dict[str, Any]:
    return {"value": round(successes / rows, 4) if rows else None, "rows": rows, "ci95": wilson(successes, rows)}


def auc_with_ci(positive: Any, negative: Any, rounds: int = 1000, seed: int = 0) -> dict[str, Any]:
    """AUC (ties count half) with a percentile bootstrap interval."""
    import numpy as np

    positive, negative = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if len(positive) == 0 or len(negative) == 0:
        return {"value": None, "positives": len(positive), "negatives": len(negative), "ci95": None}

    rng = np.random.default_rng(seed)
    draws = [_auc(rng.choice(positive, len(positive)), rng.choice(negative, len(negative))) for _ in range(rounds)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"value": round(_auc(positive, negative), 4), "positives": len(positive), "negatives": len(negative),
            "ci95": [round(float(low), 4), round(float(high), 4)]}


def _auc(positive: Any, negative: Any) -> float:
    import numpy as np

    _, inverse, counts = np.unique(np.concatenate([positive, negative]), return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # 1-based, ties share their mean rank
    return float((ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2)
                 / (len(positive) * len(negative)))


def step_table(run_dir: Path, step: str, columns: list[str]) -> tuple[Any, dict[str, Any]]:
    """The kept rows of the run's step labelled ``step`` (its ``columns`` that exist) and its record."""
    import polars as pl
    from curate.runstore import read_manifest
    from curate.shards import iter_shard_files

    records = read_manifest(run_dir)["steps"]
    record = next((r for r in records if r["label"] == step), None)
    if record is None:
        from curate.display import visible

        raise SystemExit(visible(f"error: run {run_dir} has no step labelled {step!r} (it has: "
                                 f"{', '.join(r['label'] for r in records)})"))
    frames = [pl.read_parquet(path) for path in iter_shard_files(Path(record["path"]))]
    table = pl.concat(frames, how="diagonal_relaxed")
    return table.select([c for c in columns if c in table.columns]), record


def clip_from_run(run_dir: Path, step: str = "clip_score") -> dict[str, Any]:
    """World-CLIP AUCs of the scores the pipeline computed on the downloaded images; where the
    step scored minimal edits too (``edits:``), the same for ``clip_edit_score`` under
    ``with_edits``, with the paired gaps to ``clip_score`` (same rows, same resamples)."""
    import polars as pl

    columns = ["uid", "clip_score", "clip_edit_score", "gt_noise_type", "gt_styles"]
    table, _ = step_table(run_dir, step, columns)
    if "gt_styles" not in table.columns:
        table = table.with_columns(pl.lit([], dtype=pl.List(pl.String)).alias("gt_styles"))
    result: dict[str, Any] = {"rows": table.height, **_clip_measures(table, "clip_score")}
    if "clip_edit_score" in table.columns:
        gaps = _paired_gaps(table, "clip_score", "clip_edit_score")
        result["with_edits"] = {**_clip_measures(table, "clip_edit_score"), "gap_to_clip_score": gaps}
    return result


def clip_paired_gaps(before: Any, after: Any, column: str = "clip_edit_score") -> dict[str, Any]:
    """AUC of ``after``'s ``column`` minus ``before``'s, aligned vs misaligned and partial vs
    wrong_attribute, paired on the rows both tables hold (joined on ``uid``; ``before`` carries
    ``gt_noise_type``), each with its percentile bootstrap interval."""
    both = before.select("uid", "gt_noise_type", column).join(after.select("uid", column), on="uid", suffix="_after",
                                                                     maintain_order="left")
    return _paired_gaps(both, column, f"{column}_after")


def _paired_gaps(table: Any, column_a: str, column_b: str) -> dict[str, Any]:
    """AUC of ``column_b`` minus ``column_a`` on the same rows, aligned vs misaligned and partial
    vs wrong_attribute, each with its paired bootstrap interval."""
    return {name: auc_gap_with_ci(*_sides(table, column_a, pos, neg), *_sides(table, column_b, pos, neg))
            for name, pos, neg in _comparisons()[:2]}


def _comparisons() -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    from curate_clip.api import NEGATIVE, POSITIVE

    return [("aligned_vs_misaligned", tuple(POSITIVE), tuple(NEGATIVE)),
            ("partial_vs_wrong_attribute", ("partial",), ("wrong_attribute",)),
            ("faithful_vs_wrong_attribute", ("faithful",), ("wrong_attribute",))]


def _sides(frame: Any, column: str, positive: tuple[str, ...], negative: tuple[str, ...]) -> tuple[Any, Any]:
    import polars as pl

    return (frame.filter(pl.col("gt_noise_type").is_in(positive))[column].to_numpy(),
            frame.filter(pl.col("gt_noise_type").is_in(negative))[column].to_numpy())


def _clip_measures(table: Any, column: str) -> dict[str, Any]:
    import polars as pl

    styled = table.filter(pl.col("gt_styles").list.len() > 0)
    unstyled = table.filter(pl.col("gt_styles").list.len() == 0)
    aligned = _comparisons()[0]
    return {
        **{name: auc_with_ci(*_sides(table, column, pos, neg)) for name, pos, neg in _comparisons()},
        "styled_rows": auc_with_ci(*_sides(styled, column, *aligned[1:])) if styled.height else None,
        "unstyled_rows": auc_with_ci(*_sides(unstyled, column, *aligned[1:])) if styled.height else None,
        "by_style": {style: auc_with_ci(*_sides(table.filter(pl.col("gt_styles").list.contains(style)), column,
                                                *aligned[1:]))
                     for style in STYLES} if styled.height else None,
    }


def auc_gap_with_ci(positive_a: Any, negative_a: Any, positive_b: Any, negative_b: Any, rounds: int = 1000,
                    seed: int = 0) -> dict[str, Any]:
    """AUC of scores b minus AUC of scores a on the same rows, with a paired percentile bootstrap
    (each resample of positives and negatives is scored both ways)."""
    import numpy as np

    positive_a, negative_a, positive_b, negative_b = (np.asarray(x, dtype=np.float64)
                                                      for x in (positive_a, negative_a, positive_b, negative_b))
    if len(positive_a) == 0 or len(negative_a) == 0:
        return {"value": None, "ci95": None}
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(rounds):
        p, n = rng.integers(len(positive_a), size=len(positive_a)), rng.integers(len(negative_a), size=len(negative_a))
        draws.append(_auc(positive_b[p], negative_b[n]) - _auc(positive_a[p], negative_a[n]))
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"value": round(_auc(positive_b, negative_b) - _auc(positive_a, negative_a), 4),
            "ci95": [round(float(low), 4), round(float(high), 4)]}


def captioner_from_run(run_dir: Path, step: str = "realign") -> dict[str, Any]:
    """The captioner's realigned captions in the run, scored against the rows' ground truth.

    ``entity_retention``: of rows whose alt-text names the image's entity, the caption keeps it.
    ``entity_invented``: of rows whose alt-text names none of the image's entity, the caption names
    an entity neither drawn in the image nor named by the alt-text (a hallucination proper).
    ``entity_recognized``: of rows whose image shows a logo the alt-text does not name, the caption
    names it (recognition from pixels; not an invention). ``names_entity_not_in_image``: any
    entity name not drawn in the image, copied from a wrong alt-text included."""
    from curate_captioner.api import score_texts

    from curate_world.scene import Scene

    table, _ = step_table(run_dir, step, ["uid", "alt_text", "caption_realigned", "caption_model", "gt_objects", "gt_background",
                                               "gt_texture", "gt_alt_mentions_entity", "gt_noise_type", "gt_n_objects",
                                               "gt_styles"])
    table = table.filter(table["caption_realigned"].is_not_null())
    scenes = [Scene.from_objects_json(o, b, t) for o, b, t in
              table.select("gt_objects", "gt_background", "gt_texture").iter_rows()]
    captions = table["caption_realigned"].to_list()
    named = table["gt_alt_mentions_entity"].to_list()
    alts = [a or "" for a in table["alt_text"].to_list()]
    alt_scores = score_texts(alts, scenes, named, alts)
    scores = score_texts(captions, scenes, named, alts)

    def subset(pick: list[int]) -> dict[str, Any]:
        exact = score_texts([captions[i] for i in pick], [scenes[i] for i in pick], [named[i] for i in pick],
                            [alts[i] for i in pick])["attribute_accuracy"]
        return proportion(round((exact or 0) * len(pick)), len(pick))

    def retention(pick: list[int]) -> dict[str, Any]:
        kept = score_texts([captions[i] for i in pick], [scenes[i] for i in pick], [True] * len(pick),
                           [alts[i] for i in pick])["entity_retention"]
        return proportion(round((kept or 0) * len(pick)), len(pick))

    def figure(name: str, rows_key: str | None, rows: int | None = None) -> dict[str, Any]:
        count = scores[rows_key] if rows_key else rows
        return proportion(round((scores[name] or 0) * count), count)

    return {
        "rows": table.height,
        "model": table["caption_model"].drop_nulls().first() if "caption_model" in table.columns else None,
        "attribute_accuracy": figure("attribute_accuracy", None, table.height),
        "attribute_accuracy_alt_text": proportion(round((alt_scores["attribute_accuracy"] or 0) * table.height),
                                                  table.height),
        "entity_retention": figure("entity_retention", "entity_retention_rows"),
        "entity_invented": figure("entity_invention", "entity_invention_rows"),
        "entity_recognized": figure("entity_recognized", "entity_recognized_rows"),
        "names_entity_not_in_image": figure("names_entity_not_in_image", None, table.height),
        "attribute_accuracy_by_objects": {
            str(count): subset([i for i, scene in enumerate(scenes) if len(scene.objects) == count])
            for count in sorted({len(scene.objects) for scene in scenes})
        },
        **({"styled_rows": {
            "attribute_accuracy": subset(styled := [i for i, s in enumerate(table["gt_styles"].to_list()) if s]),
            "entity_retention": retention([i for i in styled if named[i]]),
        }} if "gt_styles" in table.columns else {}),
    }


def dedup_from_run(run_dir: Path, step: str = "dedup_semantic") -> dict[str, Any]:
    """The dedup step's groups against the planted near-duplicate groups (pairs; Wilson intervals
    over pairs, which share rows, so they are a little narrow)."""
    from curate_dedup.api import dedup_verdict

    verdict = dedup_verdict(run_dir, step)["planted"]
    return {"pairs": verdict, "precision": proportion(verdict["both"], verdict["predicted"]),
            "recall": proportion(verdict["both"], verdict["true"])}


def evaluate_run(run_dir: Path) -> dict[str, Any]:
    from curate.runstore import read_manifest

    first = read_manifest(run_dir)["steps"][0]  # the source: the world's parameters
    source = {k: v for k, v in first.get("params", {}).items() if k not in ("base_url", "host", "port", "dir", "world_dir")}
    return {"run": str(run_dir), "source": source, "clip": clip_from_run(run_dir),
            "captioner": captioner_from_run(run_dir), "dedup": dedup_from_run(run_dir)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("world_dir", type=Path, nargs="?")
    parser.add_argument("--run", type=Path, default=None, help="measure a finished run of a world spec instead")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--captioner", action="store_true", help="also the captioner's metrics per style")
    parser.add_argument("--split", default="val", help="world split the captioner is measured on")
    parser.add_argument("--out", default=None, type=Path)
    args = parser.parse_args(argv)
    if args.run is not None:
        if not (args.run / "manifest.json").exists():
            parser.error(f"{args.run} is no finished run (no manifest.json); run one: curate run specs/eval_heldout.yaml")
        text = json.dumps(evaluate_run(args.run), indent=2)
        print(text)
        if args.out is not None:
            args.out.write_text(text + "\n")
        return 0
    if args.world_dir is None:
        parser.error("give a WORLD_DIR or --run RUN_DIR")
    if not (args.world_dir / "world.parquet").exists():
        parser.error(f"{args.world_dir} holds no world.parquet; make one with: curate world generate {args.world_dir} --web-style web")
    result: dict[str, Any] = {"clip": clip_auc_by_style(args.world_dir, args.checkpoint)}
    if args.captioner:
        result["captioner"] = captioner_by_style(args.world_dir, split=args.split)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
