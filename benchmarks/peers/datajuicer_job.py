"""The peers benchmark's pipeline in Data-Juicer, run by the interpreter of its own venv
(``benchmarks/.peers/datajuicer``; never a curate dependency).

Fills the recipe ``datajuicer.yaml`` (beside this file) with the paths of this run and runs
it with ``dj-process --config``: the default (standalone) executor, ``np`` processes per op,
Parquet in through its ParquetFormatter (HF ``datasets``), Parquet out through its exporter.

    python datajuicer_job.py SOURCE_DIR OUTPUT.parquet WORK_DIR [--np 2]

Prints ``{"rows": N}`` (rows written).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

RECIPE = Path(__file__).resolve().parent / "datajuicer.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source")
    parser.add_argument("output")
    parser.add_argument("work")
    parser.add_argument("--np", type=int, default=2)
    args = parser.parse_args()

    work, output = Path(args.work).resolve(), Path(args.output).resolve()
    shutil.rmtree(work, ignore_errors=True)
    output.unlink(missing_ok=True)
    work.mkdir(parents=True)
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe.update({
        "dataset_path": str(Path(args.source).resolve()),
        "export_path": str(output),
        "work_dir": str(work / "job"),
        "ds_cache_dir": str(work / "hf-cache"),  # fresh: no run reuses another's cached ops
        "temp_dir": str(work / "tmp"),
        "np": args.np,
    })
    config = work / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe, sort_keys=False))
    # dj-process of this venv; HF caches and downloads stay inside the work directory.
    env = {**os.environ, "HF_HOME": str(work / "hf-home"), "HF_DATASETS_CACHE": str(work / "hf-cache"),
           "HF_HUB_OFFLINE": "1"}
    dj_process = Path(sys.executable).parent / "dj-process"
    subprocess.run([str(dj_process), "--config", str(config)], check=True, env=env, cwd=work)

    import pyarrow.parquet as pq

    files = [output] if output.exists() else sorted(output.parent.glob(f"{output.stem}*.parquet"))
    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in files)
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
