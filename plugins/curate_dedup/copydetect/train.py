"""Train the world copy detector.

    curate dedup train-copy-world --out DIR [--steps 3000] [--scenes 32] [--seed 0] [--threads N]

Each step draws ``--scenes`` fresh scenes (4 images each, see ``worlddata``), so the model never
sees an image twice and needs no dataset on disk. Loss: InfoNCE over the batch (copies of a scene
are positives, as in SSCD) plus a margin term that puts copies above cosine ``POSITIVE_MARGIN``
and everything else below ``NEGATIVE_MARGIN``, so one fixed threshold between them (the
``threshold`` written to config.json) works for every pair, not only for ranking.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from curate.display import echo

if TYPE_CHECKING:  # numpy loads with the command, not with `curate --help`
    import numpy as np

TEMPERATURE = 0.05
POSITIVE_MARGIN = 0.97
NEGATIVE_MARGIN = 0.88
THRESHOLD = 0.94  # cosine above which two images are copies: dedup eps 0.06


def to_tensor(images: np.ndarray, config: dict):  # type: ignore[no-untyped-def,type-arg]
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["std"]).view(1, 3, 1, 1)
    return (x - mean) / std


def loss_fn(z, labels):  # type: ignore[no-untyped-def]
    import torch

    sims = z @ z.T
    n = len(z)
    eye = torch.eye(n, dtype=torch.bool)
    positive = (labels[:, None] == labels[None, :]) & ~eye
    logits = (sims / TEMPERATURE).masked_fill(eye, -1e9)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    info_nce = -(log_prob * positive).sum(1).div(positive.sum(1)).mean()
    negative = ~positive & ~eye
    margin = (torch.relu(POSITIVE_MARGIN - sims)[positive].pow(2).mean()
              + torch.relu(sims - NEGATIVE_MARGIN)[negative].pow(2).sum() / positive.sum())
    return info_nce + 100 * margin, info_nce, margin


def train(out: Path, steps: int, scenes: int, seed: int, lr: float, init: Path | None = None,
          log_every: int = 50) -> dict:  # type: ignore[type-arg]
    import numpy as np
    import torch

    from curate_dedup.copydetect.model import build, default_config, save
    from curate_dedup.copydetect.worlddata import batch

    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 7919])
    config = {**default_config(), "threshold": THRESHOLD,
              "trained": {"steps": steps, "scenes_per_step": scenes, "seed": seed, "lr": lr}}
    model = build(config)
    if init is not None:  # continue from an earlier model directory (its architecture must match)
        from curate_dedup.copydetect.model import load

        model, _ = load(init)
        config["trained"]["init"] = str(init)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup)
                                                  * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    history = []
    started = time.time()
    model.train()
    for step in range(steps):
        images, labels = batch(rng, scenes)
        z = model(to_tensor(images, config))
        loss, info_nce, margin = loss_fn(z, torch.from_numpy(labels))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % log_every == 0 or step == steps - 1:
            record = {"step": step, "loss": round(loss.item(), 4), "info_nce": round(info_nce.item(), 4),
                      "margin": round(margin.item(), 5), "seconds": round(time.time() - started, 1)}
            history.append(record)
            echo(json.dumps(record))
    model.eval()
    save(model, config, out)
    (Path(out) / "training.json").write_text(json.dumps({"config": config, "history": history}, indent=2) + "\n")
    return config


@click.command("train-copy-world", help=__doc__.split("\n\n")[0])
@click.option("--out", type=click.Path(path_type=Path), required=True, help="model directory to write")
@click.option("--steps", type=int, default=3000, show_default=True)
@click.option("--scenes", type=int, default=32, show_default=True, help="scenes per step (4 images each)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--init", type=click.Path(path_type=Path), default=None,
              help="start from this model directory instead of from scratch")
@click.option("--threads", type=int, default=0, show_default=True, help="torch threads (0: torch's default)")
def command(out: Path, steps: int, scenes: int, seed: int, lr: float, init: Path | None, threads: int) -> int:
    """``curate dedup train-copy-world`` (also ``python -m curate_dedup.copydetect.train``)."""
    from curate_dedup.copydetect.model import CONFIG, WEIGHTS

    if init is not None and not all((init / name).is_file() for name in (CONFIG, WEIGHTS)):
        # Before torch loads: a wrong path is the user's to fix, not an internal error to report.
        from curate.errors import UsageError

        raise UsageError(f"--init {init} is no copy model directory (it needs {CONFIG} and {WEIGHTS})",
                         "give a directory `curate dedup train-copy-world --out DIR` wrote")
    if threads:
        import torch

        torch.set_num_threads(threads)
    train(out, steps, scenes, seed, lr, init)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command on ``argv`` (default: the process's), returning its exit code."""
    return int(command.main(args=argv, prog_name="curate dedup train-copy-world", standalone_mode=False) or 0)


if __name__ == "__main__":
    command(prog_name="curate dedup train-copy-world")
