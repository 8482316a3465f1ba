"""``curate train clip|eval`` and ``curate experiment run``; heavy imports stay inside the commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def add_commands(cli: Any) -> None:
    import click

    @cli.group()
    def train() -> None:
        """Train models on exported data (open_clip_train) and evaluate them on a world's eval split."""

    @train.command("clip")
    @click.argument("shards", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--out", type=click.Path(path_type=Path), required=True, help="logs and checkpoints")
    @click.option("--name", default="clip")
    @click.option("--epochs", default=1, show_default=True)
    @click.option("--batch-size", default=64, show_default=True)
    @click.option("--lr", default=2e-3, show_default=True)
    @click.option("--seed", default=0, show_default=True)
    def train_clip_command(shards: Path, out: Path, name: str, epochs: int, batch_size: int, lr: float,
                           seed: int) -> None:
        """Train a world-sized CLIP from scratch on a webdataset export (open_clip_train.main)."""
        from curate_train.clip import train_clip

        click.echo(train_clip(shards, out, name=name, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed))

    @train.command("eval")
    @click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--world", "world_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
                  required=True, help="a world directory (its eval.parquet and world.json)")
    def eval_command(checkpoint: Path, world_dir: Path) -> None:
        """Zero-shot accuracy (label_shape, label_color) and retrieval R@1 on the world's eval split."""
        from curate_train.evaluate import eval_zeroshot

        click.echo(json.dumps(eval_zeroshot(checkpoint, world_dir), indent=2))

    @train.command("diffusion")
    @click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--clip", "clip_checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  required=True, help="a train_clip checkpoint; its text tower conditions the UNet (frozen)")
    @click.option("--out", type=click.Path(path_type=Path), required=True)
    @click.option("--steps", default=300, show_default=True)
    @click.option("--batch-size", default=32, show_default=True)
    @click.option("--seed", default=0, show_default=True)
    @click.option("--sample-steps", default=50, show_default=True, help="DDPM steps when sampling")
    def diffusion_command(data_dir: Path, clip_checkpoint: Path, out: Path, steps: int, batch_size: int,
                          seed: int, sample_steps: int) -> None:
        """Train a small text-to-image UNet (diffusers) on an imagefolder export; check prompted colors."""
        import importlib.util

        if importlib.util.find_spec("diffusers") is None:
            raise click.ClickException("train diffusion needs diffusers: pip install 'curate[diffusion]'")
        from curate_train.diffusion import train_diffusion

        click.echo(json.dumps(train_diffusion(data_dir, clip_checkpoint, out, steps=steps, batch_size=batch_size,
                                              seed=seed, sample_steps=sample_steps,
                                              echo=lambda line: click.echo(line, err=True)), indent=2))

    @cli.group()
    def experiment() -> None:
        """Closed-loop experiments: curate once, train per variant, compare."""

    @experiment.command("run")
    @click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--run-dir", type=click.Path(path_type=Path), default=None,
                  help="default: runs/<spec name> next to the spec")
    @click.option("--eval-only", is_flag=True, help="re-evaluate the trained variants of a finished run")
    @click.option("--seeds", default=None, help="comma-separated seeds, overriding the spec's (e.g. 0,1,2,3,4)")
    def run_command(spec: Path, run_dir: Path | None, eval_only: bool, seeds: str | None) -> None:
        """Run a blend experiment; writes RUN_DIR/experiment/results.json and results.md, or with
        several seeds RUN_DIR/seed-N/... and RUN_DIR/experiment/summary.{json,md}."""
        from curate_train.experiment import load, reevaluate, run

        loaded = load(spec)
        target = run_dir or spec.parent.parent / "runs" / loaded.name
        chosen = loaded.seeds
        if seeds is not None:
            try:
                chosen = [int(part) for part in seeds.split(",") if part.strip()]
            except ValueError:
                raise click.BadParameter(f"{seeds!r}: expected comma-separated integers, e.g. 0,1,2",
                                         param_hint="--seeds") from None
        if chosen:
            from curate_train.seeds import reevaluate_seeds, run_seeds

            (reevaluate_seeds if eval_only else run_seeds)(loaded, target, chosen, echo=click.echo)
            click.echo((target / "experiment" / "summary.md").read_text())
            return
        (reevaluate if eval_only else run)(loaded, target, echo=click.echo)
        click.echo((target / "experiment" / "results.md").read_text())
