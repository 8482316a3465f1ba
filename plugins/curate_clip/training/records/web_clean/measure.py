"""How this folder's JSONs were made. This folder's specs are `records/web_text/` (max pooling,
weight 6) and `records/web_pool/` (softmax, weight 8) with `normalize_text`'s `strip_tags: true`,
run by the code of 2026-12-06's second session (the world vocabulary's background words, emoji
after a stock label). For each world, on one run directory:

1. the `records/web_text/` spec as it was, by the code before those changes (``--before`` names
   a checkout of commit 0a1a0b3; its ``plugins`` and root go first on PYTHONPATH);
2. this folder's spec (max pooling) by the code here;
3. this folder's `_softmax` spec (``--from clip_score``: the same downloaded rows).

Each one's measures and the paired gaps (2 minus 1, 3 minus 2; 1,000 resamples). Run from a
scratch folder:

    python .../records/web_clean/measure.py --before /tmp/old tune_6413 report_8714 ...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from curate_world.api import clip_from_run, clip_paired_gaps, step_table

HERE = Path(__file__).resolve().parent
COLUMNS = ["uid", "clip_edit_score", "gt_noise_type"]


def curate(spec: Path, *extra: str, checkout: Path | None = None) -> None:
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(checkout), str(checkout / "plugins")])
    subprocess.run([sys.executable, "-m", "curate.cli", "run", str(spec), "--quiet", *extra], check=True,
                   stdout=subprocess.DEVNULL, env=env)


def measure(name: str, before_checkout: Path) -> dict:
    run, world = Path("runs") / name, name.removeprefix("report_")
    curate(HERE.parent / "web_text" / f"spec_{world}.yaml", checkout=before_checkout)
    before = clip_from_run(run)["with_edits"]
    old, _ = step_table(run, "clip_score", COLUMNS)
    curate(HERE / f"spec_{world}.yaml")
    now = clip_from_run(run)["with_edits"]
    new, _ = step_table(run, "clip_score", COLUMNS[:2])
    curate(HERE / f"spec_{world}_softmax.yaml", "--from", "clip_score")
    soft = clip_from_run(run)["with_edits"]
    softmax, _ = step_table(run, "clip_score", COLUMNS[:2])
    labelled = old.select("uid", "gt_noise_type").join(new, on="uid", maintain_order="left")
    return {"world": name, "rows": labelled.height,
            "max (weight 6), this folder": now, "softmax (T 0.02, weight 8), this folder": soft,
            "max (weight 6), before (records/web_text as run at 0a1a0b3)": before,
            "paired_gap_max_now_minus_before": clip_paired_gaps(old, new),
            "paired_gap_softmax_minus_max_now": clip_paired_gaps(labelled, softmax)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True, help="a checkout of commit 0a1a0b3")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    for name in args.names:
        (HERE / f"{name}.json").write_text(json.dumps(measure(name, args.before.resolve()), indent=1) + "\n")
