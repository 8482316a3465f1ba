"""The summary of an experiment over seeds: per variant and metric the mean ± sd over seeds
(``<metric>``, ``<metric>_std``, ``<metric>_by_seed``: the shape the report's Experiments section
draws), and per pair of variants and metric the *paired* difference (seed s of one minus seed s of
the other: same initialization, same data order where the rows agree), its mean, its 95 %
confidence interval (Student's t over the seeds' differences) and the number of seeds each side won.

A gap **exceeds its spread** when the interval excludes 0 (with 2+ seeds), i.e. the variants
differ by more than their paired seed-to-seed noise. With 3 seeds that needs a consistent gap
(t = 4.30); the sign count is shown beside it (3/3 is the most 3 seeds can say).
"""

from __future__ import annotations

import math
import statistics
from itertools import combinations
from typing import Any

# two-sided 95 % quantiles of Student's t by degrees of freedom (beyond 30: the normal's 1.96)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
       20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
       29: 2.045, 30: 2.042}
SKIP = ("variant", "seed", "train_seed", "export_seed", "model", "steps", "seconds", "samples_seen", "repeats",
        "config")


def metrics_of(result: dict[str, Any]) -> list[str]:
    return [k for k, v in result.items() if k not in SKIP and isinstance(v, (int, float)) and not k.endswith(".chance")]


def paired(differences: list[float]) -> dict[str, Any]:
    """Mean, sd, 95 % CI half-width of paired differences, and whether the CI excludes 0."""
    n = len(differences)
    mean = statistics.fmean(differences)
    sd = statistics.stdev(differences) if n > 1 else 0.0
    half = T95.get(n - 1, 1.96) * sd / math.sqrt(n) if n > 1 else math.inf
    return {"mean": round(mean, 2), "sd": round(sd, 2), "ci95": round(half, 2) if n > 1 else None,
            "wins": sum(d > 0 for d in differences), "losses": sum(d < 0 for d in differences),
            "by_seed": [round(d, 2) for d in differences],
            "exceeds_spread": bool(n > 1 and abs(mean) > half)}


def summarize(name: str, results: dict[int, dict[str, dict[str, Any]]], order: list[str],
              facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """``results[seed][variant]`` (each variant's result.json) → the summary written as JSON."""
    seeds = sorted(results)
    first = results[seeds[0]][order[0]]
    metrics = metrics_of(first)
    variants = []
    for variant in order:
        row: dict[str, Any] = {"variant": variant}
        for metric in metrics:  # flat, as the report's Experiments section reads it (bars ± _std)
            values = [results[s][variant][metric] for s in seeds]
            row[metric] = round(statistics.fmean(values), 2)
            row[f"{metric}_std"] = round(statistics.stdev(values), 2) if len(values) > 1 else 0.0
            row[f"{metric}_by_seed"] = values
        row["cached_steps"] = {s: [st["label"] for st in results[s][variant]["steps"] if st["cached"]] for s in seeds}
        variants.append(row)
    gaps = []
    for a, b in combinations(order, 2):
        for metric in metrics:
            if metric == "rows":
                continue
            diffs = [results[s][a][metric] - results[s][b][metric] for s in seeds]
            gaps.append({"a": a, "b": b, "metric": metric, **paired(diffs)})
    chance = {k: v for k, v in first.items() if k.endswith(".chance")}
    return {"name": name, "seeds": seeds, **(facts or {}), "chance": chance,
            "gap_rule": "a − b per seed (paired); exceeds_spread: the 95 % t interval of the mean paired "
                        "difference excludes 0", "variants": variants, "gaps": gaps}


def markdown(summary: dict[str, Any]) -> str:
    seeds = summary["seeds"]
    rows = summary["variants"]
    metrics = [k for k in rows[0] if k not in ("variant", "cached_steps") and not k.endswith(("_std", "_by_seed"))]
    headline = next((m for m in metrics if m != "rows"), metrics[0])
    lines = [f"# Experiment '{summary['name']}', seeds {', '.join(map(str, seeds))}", "",
             f"Base spec {summary.get('base_spec', '')}; every variant trains on "
             f"{' / '.join(map(str, summary.get('samples_seen') or [])) or '?'} samples (model {summary.get('model')}, batch {summary.get('batch_size')}, caption column "
             f"{summary.get('caption')}). Mean ± sd over seeds; per-seed values after the bar. Chance: "
             + ", ".join(f"{k} {v}" for k, v in summary.get("chance", {}).items()), "",
             "| variant | " + " | ".join(metrics) + f" | {headline} by seed |",
             "|---|" + "---|" * (len(metrics) + 1)]
    for row in rows:
        cells = [f"{row[m]:.2f} ± {row[m + '_std']:.2f}" if m != "rows" else
                 "/".join(str(v) for v in row[m + "_by_seed"]) for m in metrics]
        lines.append(f"| {row['variant']} | " + " | ".join(cells) + " | "
                     + " / ".join(f"{v:.1f}" for v in row[headline + "_by_seed"]) + " |")
    lines += ["", "Paired gaps (a − b, same seed): mean ± 95 % CI over seeds, seeds a won/lost; **bold**: the "
              "interval excludes 0 (the gap exceeds the seed spread).", "",
              "| a | b | metric | gap | a won / lost | per seed | exceeds spread |", "|---|---|---|---|---|---|---|"]
    for gap in summary["gaps"]:
        ci = f" ± {gap['ci95']:.2f}" if gap["ci95"] is not None else ""
        text = f"{gap['mean']:+.2f}{ci}"
        lines.append(f"| {gap['a']} | {gap['b']} | {gap['metric']} | {'**' + text + '**' if gap['exceeds_spread'] else text}"
                     f" | {gap['wins']}/{gap['losses']} | {' / '.join(f'{d:+.1f}' for d in gap['by_seed'])} | "
                     f"{'yes' if gap['exceeds_spread'] else 'no'} |")
    cached = [f"{row['variant']}: " + "; ".join(f"seed {s}: {', '.join(labels) or 'none'}"
                                                for s, labels in row["cached_steps"].items()) for row in rows]
    lines += ["", "Steps reused from the shared store (computed by an earlier variant or seed):", ""]
    lines += [f"- {line}" for line in cached]
    return "\n".join(lines) + "\n"
