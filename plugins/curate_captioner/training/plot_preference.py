"""Plots of the preference and guidance comparisons (`curate captioner compare` JSON files).

    python plugins/curate_captioner/training/plot_preference.py   # writes logs/preference/*.png

and, from the β × lr sweep's comparisons (logs/preference/sweep/select.json on the selection
world, test.json on the held-out test world), sweep.png and sweep_test.png; the same from
logs/preference/sweep2/ (sweep 2, with the entity world's test_entity.json beside test.json).

Each point is a metric's mean over the compared rows with its 95 % bootstrap interval, as the
JSON holds them; nothing is re-measured here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

LOGS = Path(__file__).parent / "logs" / "preference"
METRICS = (("attribute_accuracy", "attribute accuracy"), ("clip_score", "CLIP score (world CLIP)"),
           ("r_at_1", "caption→image R@1"), ("entity_retention", "entity retention"))


def _points(compare: dict, metric: str) -> list[tuple[str, float, float, float]]:
    points = []
    for run in compare["runs"]:
        value = compare["metrics"][run["label"]][metric]["value"]
        points.append((run["label"], value["mean"], value["low"], value["high"]))
    return points


def plot_guidance(compare: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = [run["guidance"] for run in compare["runs"]]
    figure, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.4))
    for axis, (metric, title) in zip(axes, METRICS):
        points = _points(compare, metric)
        means = [p[1] for p in points]
        errors = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
        axis.errorbar(scales, means, yerr=errors, marker="o", capsize=3)
        axis.set_xlabel("guidance scale (image)")
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
    figure.suptitle(f"classifier-free guidance, {compare['rows']} rows of an unseen world (95 % CI)", fontsize=11)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def plot_runs(compares: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 0.5 + 0.45 * sum(len(c["runs"]) for c in compares)))
    for axis, (metric, title) in zip(axes, (METRICS[0], METRICS[3])):
        labels, means, lows, highs = [], [], [], []
        for compare in compares:
            for label, mean, low, high in _points(compare, metric):
                if label in labels:
                    continue
                labels.append(label)
                means.append(mean)
                lows.append(mean - low)
                highs.append(high - mean)
        axis.errorbar(means, range(len(labels)), xerr=[lows, highs], fmt="o", capsize=3)
        axis.set_yticks(range(len(labels)), labels, fontsize=8)
        axis.invert_yaxis()
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
    figure.suptitle("preference stage vs the SFT model it starts from (95 % CI)", fontsize=11)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def _sweep_cell(label: str) -> tuple[float, float, str] | None:
    """``b0.1_lr1e-5`` → (0.1, 1e-5, ""); ``b0.1_lr1e-5_ln`` → (…, "ln"); anything else → None."""
    parts = label.split("_")
    if len(parts) < 2 or not parts[0].startswith("b") or not parts[1].startswith("lr"):
        return None
    try:
        return float(parts[0][1:]), float(parts[1][2:]), "_".join(parts[2:])
    except ValueError:
        return None


def plot_sweep(compare: dict, out: Path) -> None:
    """Each metric's paired difference from the SFT model against lr, one line per β (selection world)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = compare["runs"][0]["label"]
    shown = (METRICS[0], ("wrong_attribute", "wrong attribute"), METRICS[3])
    figure, axes = plt.subplots(1, len(shown), figsize=(4.4 * len(shown), 3.6))
    lines: dict[tuple[float, str], list[tuple[float, dict]]] = {}
    for run in compare["runs"][1:]:
        cell = _sweep_cell(run["label"])
        if cell is not None:
            lines.setdefault((cell[0], cell[2]), []).append((cell[1], compare["metrics"][run["label"]]))
    for axis, (metric, title) in zip(axes, shown):
        for offset, ((beta, variant), points) in enumerate(sorted(lines.items())):
            points.sort(key=lambda p: p[0])
            lrs = [p[0] * (1 + 0.06 * (offset - len(lines) / 2)) for p in points]  # side by side
            diffs = [p[1][metric]["minus_" + base] for p in points]
            axis.errorbar(lrs, [d["mean"] for d in diffs], yerr=[[d["mean"] - d["low"] for d in diffs],
                                                                   [d["high"] - d["mean"] for d in diffs]],
                          marker="o", capsize=3, label=f"β {beta:g}" + (f" {variant}" if variant else ""))
        axis.axhline(0, color="grey", lw=0.8)
        axis.set_xscale("log")
        axis.minorticks_off()
        tried = sorted({lr for points in lines.values() for lr, _ in points})
        axis.set_xticks(tried, [f"{lr:.0e}".replace("e-0", "e-") for lr in tried])
        axis.set_xlabel("learning rate")
        axis.set_title(f"Δ {title} vs SFT", fontsize=10)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle(f"β × lr sweep on the selection world ({compare['rows']} rows, paired 95 % CI)", fontsize=11)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main() -> int:
    plot_guidance(json.loads((LOGS / "cmp_cfg.json").read_text()), LOGS / "guidance.png")
    runs = [json.loads(path.read_text()) for path in sorted(LOGS.glob("cmp_*.json")) if path.name != "cmp_cfg.json"]
    plot_runs(runs, LOGS / "preference.png")
    print(f"wrote {LOGS / 'guidance.png'} and {LOGS / 'preference.png'}")
    sweep = LOGS / "sweep"
    if (sweep / "select.json").exists():
        plot_sweep(json.loads((sweep / "select.json").read_text()), sweep / "sweep.png")
        print(f"wrote {sweep / 'sweep.png'}")
    if (sweep / "test.json").exists():
        plot_runs([json.loads((sweep / "test.json").read_text())], sweep / "sweep_test.png")
        print(f"wrote {sweep / 'sweep_test.png'}")
    plot_sweep2(LOGS / "sweep2")
    return 0


def plot_sweep2(sweep: Path) -> None:
    """Sweep 2 (the web fine-tuned captioner): the β × lr grid on the selection world, and every
    run of the held-out test and entity worlds."""
    if (sweep / "select.json").exists():
        plot_sweep(json.loads((sweep / "select.json").read_text()), sweep / "sweep.png")
        print(f"wrote {sweep / 'sweep.png'}")
    for name, png in (("test", "sweep_test.png"), ("test_entity", "sweep_entity.png")):
        if (sweep / f"{name}.json").exists():
            plot_runs([json.loads((sweep / f"{name}.json").read_text())], sweep / png)
            print(f"wrote {sweep / png}")


if __name__ == "__main__":
    sys.exit(main())
