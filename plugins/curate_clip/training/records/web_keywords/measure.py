"""How this folder's JSONs were made. This folder's specs are `records/web_clean/`'s with
`strip_boilerplate`'s `keywords: true` (a trailing list of search keywords removed). For each world,
on one run directory, by the same code (the option is off by default):

1. `records/web_clean/`'s spec (max pooling, weight 6), then its `_softmax` spec (``--from
   clip_score``: the same downloaded rows);
2. this folder's spec (``--from strip_boilerplate``), then its `_softmax` spec.

Each one's measures and the paired gaps (this folder's minus web_clean's, same pooling, same rows;
1,000 resamples). Run from a scratch folder:

    python .../records/web_keywords/measure.py tune_6413 tune_6415 tune_6414 report_8714 ...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from curate_world.api import clip_from_run, clip_paired_gaps, step_table

HERE = Path(__file__).resolve().parent
BEFORE = HERE.parent / "web_clean"
COLUMNS = ["uid", "clip_edit_score", "gt_noise_type"]
POOLINGS = {"max (weight 6)": "", "softmax (T 0.02, weight 8)": "_softmax"}


def curate(spec: Path, *extra: str) -> None:
    subprocess.run([sys.executable, "-m", "curate.cli", "run", str(spec), "--quiet", *extra], check=True,
                   stdout=subprocess.DEVNULL)


def measure(name: str) -> dict:
    run, world = Path("runs") / name, name.removeprefix("report_")
    result: dict = {"world": name}
    before: dict = {}
    for pooling, suffix in POOLINGS.items():  # web_clean: download once, then the other pooling
        curate(BEFORE / f"spec_{world}{suffix}.yaml", *(["--from", "clip_score"] if suffix else []))
        before[pooling] = (clip_from_run(run)["with_edits"], step_table(run, "clip_score", COLUMNS)[0])
    for pooling, suffix in POOLINGS.items():
        curate(HERE / f"spec_{world}{suffix}.yaml", "--from", "strip_boilerplate" if not suffix else "clip_score")
        measures, old = before[pooling]
        new, _ = step_table(run, "clip_score", COLUMNS[:2])
        result["rows"] = old.height
        result[pooling] = {"web_clean": measures, "keywords": clip_from_run(run)["with_edits"],
                           "paired_gap_keywords_minus_web_clean": clip_paired_gaps(old, new)}
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    for name in args.names:
        (HERE / f"{name}.json").write_text(json.dumps(measure(name), indent=1) + "\n")
        print(name, "done", flush=True)
