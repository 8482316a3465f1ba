"""Add seeds to a finished experiment summary: the per-seed values of a stored ``summary.json``
(its ``<metric>_by_seed``) plus the ``seed-N/VARIANT/result.json`` of later runs, summarised again
with curate_train's paired gaps (mean ± 95 % t half-width over all seeds, seeds won / lost).

    python benchmarks/captioner_loop_combine.py \\
        --stored plugins/curate_captioner/training/logs/preference/sweep/loop_summary.json \\
        --runs runs/loop/sft --runs runs/loop/dpo --runs runs/loop/guided \\
        --out plugins/curate_captioner/training/logs/preference/sweep/loop_summary5

A seed both stored and rerun keeps its stored values (the summary the README quoted), or with
``--prefer rerun`` the rerun's (rerun every seed and variant for a summary of one session's models
and code); either way the two are compared (``reproduced``: per seed, variant and metric, the stored
value, the rerun's and rerun − stored). Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def stored_results(summary: dict[str, Any]) -> dict[int, dict[str, dict[str, Any]]]:
    """``results[seed][variant]`` rebuilt from a summary's ``_by_seed`` lists (and its chance levels)."""
    results: dict[int, dict[str, dict[str, Any]]] = {}
    for row in summary["variants"]:
        metrics = [k[: -len("_by_seed")] for k in row if k.endswith("_by_seed")]
        for index, seed in enumerate(summary["seeds"]):
            cached = row.get("cached_steps", {}).get(str(seed), [])
            results.setdefault(seed, {})[row["variant"]] = {
                **{m: row[m + "_by_seed"][index] for m in metrics}, **summary.get("chance", {}),
                "steps": [{"label": label, "cached": True} for label in cached]}
    return results


def run_results(run_dirs: list[Path]) -> dict[int, dict[str, dict[str, Any]]]:
    """``results[seed][variant]`` from every ``seed-N/VARIANT/result.json`` below the run dirs."""
    results: dict[int, dict[str, dict[str, Any]]] = {}
    for run_dir in run_dirs:
        files = sorted(run_dir.glob("seed-*/*/result.json"))
        if not files:
            raise SystemExit(f"{run_dir}: no seed-N/VARIANT/result.json below it; "
                             "pass the --run-dir of a `curate experiment run` that finished a variant")
        for path in files:
            result = json.loads(path.read_text())
            results.setdefault(int(result["seed"]), {})[result["variant"]] = result
    return results


def combine(summary: dict[str, Any], fresh: dict[int, dict[str, dict[str, Any]]],
            prefer: str = "stored") -> tuple[dict, dict]:
    """The summary over stored + new seeds (``prefer``: whose values a seed in both keeps), and the
    reproduction check of seeds in both."""
    from curate_train.gaps import summarize

    order = [row["variant"] for row in summary["variants"]]
    results = stored_results(summary)
    reproduced: dict[str, dict[str, Any]] = {}
    for seed, by_variant in sorted(fresh.items()):
        if seed in results:
            for variant, result in by_variant.items():
                stored = results[seed][variant]
                reproduced[f"seed {seed} {variant}"] = {
                    m: {"stored": stored[m], "rerun": result[m], "diff": round(result[m] - stored[m], 2)}
                    for m in stored if m not in ("steps", "rows") and not m.endswith(".chance")}
            if prefer == "stored":
                continue
        missing = [v for v in order if v not in by_variant]
        if missing:
            raise SystemExit(f"seed {seed}: no result for variant(s) {', '.join(missing)}; "
                             "run them (or leave the seed out) before combining")
        results[seed] = by_variant
    facts = {k: summary[k] for k in ("base_spec", "model", "samples_seen", "batch_size", "lr", "caption", "plans")
             if k in summary}
    rerun = sorted(s for s in fresh if prefer == "rerun" or s not in summary["seeds"])
    facts["sources"] = {"stored": [s for s in summary["seeds"] if s not in rerun], "rerun": rerun}
    return summarize(summary["name"], results, order, facts=facts), reproduced


def reproduction_markdown(combined: dict[str, Any]) -> str:
    """Where each seed's values come from, and every rerun of a stored seed beside the stored value."""
    sources = combined["sources"]
    lines = ["", f"Seeds from the stored summary: {', '.join(map(str, sources['stored'])) or 'none'}; "
             f"run again: {', '.join(map(str, sources['rerun'])) or 'none'}.", ""]
    if combined["reproduced"]:
        metrics = list(next(iter(combined["reproduced"].values())))
        lines += ["Reproduction (seeds both stored and rerun): stored → rerun (rerun − stored).", "",
                  "| seed, variant | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        for key, values in combined["reproduced"].items():
            lines.append(f"| {key} | " + " | ".join(f"{values[m]['stored']:.2f} → {values[m]['rerun']:.2f} "
                                                     f"({values[m]['diff']:+.2f})" for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stored", type=Path, required=True, help="a finished experiment's summary.json")
    parser.add_argument("--runs", type=Path, action="append", default=[], help="a later run dir (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md are written")
    parser.add_argument("--prefer", choices=("stored", "rerun"), default="stored",
                        help="whose values a seed both stored and rerun keeps")
    args = parser.parse_args()
    from curate_train.gaps import markdown

    combined, reproduced = combine(json.loads(args.stored.read_text()), run_results(args.runs), args.prefer)
    combined["reproduced"] = reproduced
    args.out.with_suffix(".json").write_text(json.dumps(combined, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(combined) + reproduction_markdown(combined))
    print(json.dumps({"seeds": combined["seeds"], "sources": combined["sources"], "reproduced": reproduced}, indent=1))


if __name__ == "__main__":
    main()
