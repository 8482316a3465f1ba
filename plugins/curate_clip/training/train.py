"""Train the world CLIP: generate a world, write shards, run ``open_clip_train.main``.

    python -m curate_clip.training.train --out .curate/world-clip [--n 12000 --epochs 20]

The world used for training (seed 1000 by default) is not the one the quickstart curates
(seed 0) nor the held-out one the evaluation uses (seed 2000).
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

from curate_clip.models import CONFIG_DIR, WORLD_MODEL


def open_clip_args(pattern: str, samples: int, logs: Path, epochs: int, batch_size: int, lr: float,
                   workers: int, seed: int) -> list[str]:
    return [
        "--train-data", pattern,
        "--dataset-type", "webdataset",
        "--train-num-samples", str(samples),
        "--model", WORLD_MODEL,
        "--batch-size", str(batch_size),
        "--epochs", str(epochs),
        "--lr", str(lr),
        "--wd", "0.1",
        "--warmup", "50",
        "--workers", str(workers),
        "--precision", "fp32",
        "--seed", str(seed),
        "--logs", str(logs),
        "--name", "world-clip",
        "--save-frequency", "1",
        "--zeroshot-frequency", "0",
        "--val-frequency", "0",
        "--log-every-n-steps", "20",
        "--report-to", "",
        "--device", "cpu",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(".curate/world-clip"))
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--export", type=Path, default=None, help="write the final weights here (safetensors)")
    args = parser.parse_args(argv)

    import open_clip
    from curate_world.generate import generate_world

    from curate_clip.training.data import write_shards

    world = generate_world(args.out / "world", n=args.n, seed=args.seed, fault_rate=0.0, dup_fraction=0.0)
    pattern, samples = write_shards(world.dir, args.out / "shards", seed=args.seed)
    open_clip.add_model_config(str(CONFIG_DIR))
    from curate_clip.training.compat import tolerate_shard_end_markers

    tolerate_shard_end_markers()
    logs = args.out / "logs"
    import shutil

    shutil.rmtree(logs / "world-clip", ignore_errors=True)
    from open_clip_train.main import main as train_main

    train_main(open_clip_args(pattern, samples, logs, args.epochs, args.batch_size, args.lr,
                              args.workers, args.seed))
    checkpoints = sorted(glob.glob(str(logs / "world-clip" / "checkpoints" / "epoch_*.pt")))
    if not checkpoints:
        print("training produced no checkpoint", file=sys.stderr)
        return 1
    if args.export is not None:
        from curate_clip.models import export_safetensors

        export_safetensors(Path(checkpoints[-1]), args.export)
        print(f"exported {checkpoints[-1]} → {args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
