"""How this folder's JSONs were made: for each world, the `records/web_text/` spec (max pooling,
weight 6) and then this folder's spec (softmax, weight 8) on the same run directory (the second
with ``--from clip_score``, so both score the same downloaded rows), each one's measures and the
paired gaps (softmax minus max, 1,000 resamples). Run from a scratch folder:

    python plugins/curate_clip/training/records/web_pool/measure.py tune_6413 report_8714 ...
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from curate_world.api import clip_from_run, clip_paired_gaps, step_table

HERE = Path(__file__).resolve().parent


def curate(spec: Path, *extra: str) -> None:
    subprocess.run([sys.executable, "-m", "curate.cli", "run", str(spec), "--quiet", *extra], check=True,
                   stdout=subprocess.DEVNULL)


def measure(name: str) -> dict:
    run, world = Path("runs") / name, name.removeprefix("report_")
    curate(HERE.parent / "web_text" / f"spec_{world}.yaml")
    before = clip_from_run(run)["with_edits"]
    old, _ = step_table(run, "clip_score", ["uid", "clip_edit_score", "gt_noise_type"])
    curate(HERE / f"spec_{world}.yaml", "--from", "clip_score")
    after = clip_from_run(run)["with_edits"]
    new, _ = step_table(run, "clip_score", ["uid", "clip_edit_score"])
    return {"world": name, "rows": old.join(new, on="uid").height, "softmax (T 0.02, weight 8)": after,
            "max (weight 6, as before)": before, "paired_gap_softmax_minus_max": clip_paired_gaps(old, new)}


if __name__ == "__main__":
    for name in sys.argv[1:]:
        (HERE / f"{name}.json").write_text(json.dumps(measure(name), indent=1) + "\n")
