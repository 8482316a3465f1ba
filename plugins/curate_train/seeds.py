"""The blend experiment over several seeds, summarized as mean ± sd and paired gaps.

One seed cannot resolve a few points of zero-shot accuracy between tiny CLIPs: the training's
own seed-to-seed spread is larger. So ``seeds: [0, 1, 2, 3, 4]`` runs the whole experiment once
per seed (``RUN_DIR/seed-N``: mix draws, realign sampling, open_clip_train's init), then writes
``RUN_DIR/experiment/summary.{json,md}``: per variant the mean and standard deviation over seeds,
and the *paired* gap of each variant to ``alt_text`` and to ``realigned`` (within a seed every
variant starts from the same initialization and sees the same images, so the per-seed
difference removes the spread they share).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from curate import display

METRICS = ("accuracy", "acc_shape", "acc_color", "accuracy_simple", "i2t_r1", "t2i_r1", "synthetic_share")
BASELINES = ("alt_text", "realigned")


def run_seeds(spec: Any, run_dir: Path, seeds: list[int], *, echo: Any = display.echo) -> dict[str, Any]:
    """Run ``spec`` once per seed (a finished seed's results are reused) and summarize."""
    from curate_train.experiment import run

    for seed in seeds:
        seed_dir = run_dir / f"seed-{seed}"
        done = seed_dir / "experiment" / "results.json"
        if done.exists() and len(json.loads(done.read_text())["results"]) == len(spec.variants):
            echo(f"seed {seed}: finished earlier ({done}), reused")
            continue
        echo(f"seed {seed}: running in {seed_dir}")
        run(spec.model_copy(update={"seed": seed}), seed_dir, echo=echo)
    return summarize(spec.name, run_dir, seeds)


def reevaluate_seeds(spec: Any, run_dir: Path, seeds: list[int], *, echo: Any = display.echo,
                     reevaluate: Any = None) -> dict[str, Any]:
    """``--eval-only`` over seeds: evaluate every seed's trained variants again, then summarize.
    Every seed must have finished (its ``seed-N/experiment/results.json``); a missing one is an
    error naming what is there, before anything is re-evaluated."""
    from curate.errors import CurateError

    if reevaluate is None:
        from curate_train.experiment import reevaluate
    missing = [seed for seed in seeds if not (run_dir / f"seed-{seed}" / "experiment" / "results.json").exists()]
    if missing:
        present = sorted(p.parent.parent.name for p in run_dir.glob("seed-*/experiment/results.json"))
        raise CurateError(f"--eval-only: seed(s) {', '.join(map(str, missing))} have no finished run under {run_dir}",
                          f"finished: {', '.join(present) or 'none'}; run them first (without --eval-only) "
                          "or pass --seeds with the finished ones")
    for seed in seeds:
        echo(f"seed {seed}: re-evaluating {run_dir / f'seed-{seed}'}")
        reevaluate(spec.model_copy(update={"seed": seed}), run_dir / f"seed-{seed}", echo=echo)
    return summarize(spec.name, run_dir, seeds)


def mean_sd(values: list[float]) -> tuple[float, float]:
    return (round(statistics.fmean(values), 2), round(statistics.stdev(values), 2) if len(values) > 1 else 0.0)


def summarize(name: str, run_dir: Path, seeds: list[int]) -> dict[str, Any]:
    """Flat rows, one per variant: ``<metric>`` is the mean over seeds and ``<metric>_std`` its
    standard deviation (the report's Experiments section draws it as an error bar);
    ``gap_vs_<baseline>`` (+ ``_std``) the mean paired difference in zero-shot accuracy and
    ``wins_vs_<baseline>`` the seeds where the variant beat the baseline."""
    per_seed = {seed: {row["variant"]: row for row in
                       json.loads((run_dir / f"seed-{seed}" / "experiment" / "results.json").read_text())["results"]}
                for seed in seeds}
    variants = list(per_seed[seeds[0]])
    rows = []
    for variant in variants:
        row: dict[str, Any] = {"variant": variant}
        for metric in METRICS:
            row[metric], row[f"{metric}_std"] = mean_sd([per_seed[s][variant][metric] for s in seeds])
        for baseline in BASELINES:
            if baseline in per_seed[seeds[0]] and baseline != variant:
                gaps = [per_seed[s][variant]["accuracy"] - per_seed[s][baseline]["accuracy"] for s in seeds]
                row[f"gap_vs_{baseline}"], row[f"gap_vs_{baseline}_std"] = mean_sd(gaps)
                row[f"wins_vs_{baseline}"] = sum(g > 0 for g in gaps)
        row["accuracy_by_seed"] = [per_seed[s][variant]["accuracy"] for s in seeds]
        rows.append(row)
    blends = [r for r in rows if r["variant"] not in BASELINES]
    best = max(blends, key=lambda r: r["accuracy"]) if blends else None
    summary = {"name": name, "seeds": json.dumps(seeds), "metric": "mean over seeds of each seed's results.json; "
               "accuracy = zero-shot (%), *_std = standard deviation over seeds, gap_vs_X = paired difference",
               "best_blend": best["variant"] if best else "", "results": rows}
    out = run_dir / "experiment"
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(markdown(summary))
    return summary


def _cell(row: dict[str, Any], metric: str) -> str:
    return f"{row[metric]:.1f} ± {row[metric + '_std']:.1f}"


def _gap(row: dict[str, Any], baseline: str, seeds: int) -> str:
    key = f"gap_vs_{baseline}"
    return "" if key not in row else f"{row[key]:+.1f} ± {row[key + '_std']:.1f} ({row['wins_vs_' + baseline]}/{seeds})"


def markdown(summary: dict[str, Any]) -> str:
    seeds = len(json.loads(summary["seeds"]))
    lines = [f"# Blend experiment '{summary['name']}', seeds {summary['seeds']}", "",
             "Mean ± sd over seeds, %. Gaps are paired (same seed), with the number of seeds the "
             "variant won.", "",
             "| variant | zero-shot | shape | color | i2t R@1 | t2i R@1 | synthetic | vs alt_text | vs realigned "
             "| zero-shot by seed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in summary["results"]:
        lines.append(" | ".join([
            f"| {row['variant']}", _cell(row, "accuracy"), _cell(row, "acc_shape"), _cell(row, "acc_color"),
            _cell(row, "i2t_r1"), _cell(row, "t2i_r1"), f"{row['synthetic_share']:.2f}",
            _gap(row, "alt_text", seeds), _gap(row, "realigned", seeds),
            " / ".join(f"{v:.1f}" for v in row["accuracy_by_seed"]) + " |"]))
    if summary["best_blend"]:
        lines += ["", f"Best blend by mean zero-shot: **{summary['best_blend']}**."]
    return "\n".join(lines) + "\n"
