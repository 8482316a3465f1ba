"""``curate train clip|eval`` and ``curate experiment run``; heavy imports stay inside the commands."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from curate.cli import allow_remote_option
from curate.display import echo
from curate.errors import pip_install


@click.group()
def train() -> None:
    """Train models on exported data (open_clip_train) and evaluate them on a world's eval split."""


@train.command("clip")
@click.argument("shards", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="logs and checkpoints")
@click.option("--name", default="clip")
@click.option("--model", default="tiny", show_default=True,
              help="tiny, world, local-dir:<folder> (starts from its weights) or an open_clip config .json")
@click.option("--epochs", type=int, default=None, help="passes over the shards [default: 1]")
@click.option("--samples", type=int, default=None,
              help="budget in samples instead of --epochs: ceil(samples / shard samples) passes")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--lr", default=2e-3, show_default=True)
@click.option("--warmup", default=20, show_default=True, help="warmup steps")
@click.option("--threads", default=1, show_default=True, help="torch threads (0: torch's default)")
@click.option("--precision", default="fp32", show_default=True,
              help="open_clip_train's --precision: " + ", ".join(
                  ("amp", "amp_bf16", "amp_bfloat16", "bf16", "fp16", "pure_bf16", "pure_fp16", "fp32")))
@click.option("--seed", default=0, show_default=True)
def train_clip_command(shards: Path, out: Path, name: str, model: str, epochs: int | None, samples: int | None,
                       batch_size: int, lr: float, warmup: int, threads: int, precision: str, seed: int) -> None:
    """Train a CLIP on a webdataset export (open_clip_train.main). Prints the checkpoint and the
    local-dir: model folder written beside it (usable as `model:` by clip_score and as --model here)."""
    from curate_train.clip import PRECISIONS, epochs_for_samples, model_dir, shard_pattern, train_clip

    from curate.errors import UsageError

    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r} is not one open_clip_train accepts",
                         f"choose one of {', '.join(PRECISIONS)}")
    if epochs is not None and samples is not None:
        raise UsageError("give --epochs or --samples, not both")
    if warmup < 0 or threads < 0 or batch_size <= 0:
        raise UsageError("--warmup and --threads must be ≥ 0 and --batch-size > 0")
    if not (lr > 0 and math.isfinite(lr)) or (epochs is not None and epochs < 1):
        raise UsageError(f"--lr must be a positive number and --epochs at least 1, got --lr {lr}"
                         + (f" --epochs {epochs}" if epochs is not None else ""))
    if not (shards / "sizes.json").is_file():
        raise UsageError(f"{shards} has no sizes.json", "SHARDS is what the webdataset sink writes")
    if samples is not None:
        pool = shard_pattern(shards)[1]
        epochs = epochs_for_samples(samples, pool)
        echo(f"--samples {samples}: {epochs} pass(es) over {pool} samples = {epochs * pool} samples", err=True)
    checkpoint = train_clip(shards, out, name=name, epochs=epochs or 1, batch_size=batch_size, lr=lr,
                            warmup=warmup, seed=seed, model=model, threads=threads or None, precision=precision)
    echo(f"checkpoint: {checkpoint}")
    echo(f"model: local-dir:{model_dir(checkpoint).resolve()}")


@train.command("eval")
@click.argument("checkpoint", required=False)
@click.option("--model", default="tiny", show_default=True,
              help="architecture of a .pt CHECKPOINT (tiny, world, config .json), or local-dir:<folder>")
@click.option("--world", "world_dir", type=click.Path(path_type=Path), default=None,
              help="a world directory (its eval.parquet and world.json)")
@click.option("--eval-set", "eval_sets", multiple=True, type=click.Path(path_type=Path),
              help="a YAML eval-set file (see curate_train/README.md); repeatable")
@click.option("--images", default=None, type=click.Path(path_type=Path),
              help="an imagefolder (class subfolders) or a .parquet/.csv table with path + label/text")
@click.option("--task", type=click.Choice(["auto", "classification", "retrieval"]), default="auto",
              show_default=True, help="with --images")
@click.option("--label-column", default="label", show_default=True, help="with --images (a table)")
@click.option("--text-column", default="text", show_default=True, help="with --images (a table)")
@click.option("--path-column", default="path", show_default=True, help="with --images (a table)")
@click.option("--template", "templates", multiple=True,
              help="prompt template with one {} (repeatable; averaged) [default: 'a photo of a {}.']")
def eval_command(checkpoint: str | None, model: str, world_dir: Path | None, eval_sets: tuple[Path, ...],
                 images: Path | None, task: str, label_column: str, text_column: str, path_column: str,
                 templates: tuple[str, ...]) -> None:
    """Zero-shot classification and image-text retrieval: on a world's eval split (--world, the
    same numbers as before) and/or on eval sets given as data (--eval-set, --images). CHECKPOINT is a
    .pt (with --model for its architecture) or a local-dir: model folder; or pass --model local-dir:..."""
    from curate_train.evalsets import load_eval_sets, make_eval_set

    from curate.errors import UsageError

    sets = [s for file in eval_sets for s in load_eval_sets(file)]
    if images is not None:
        fields = {"format": "imagefolder" if images.is_dir() else "table", "path": str(images), "task": task,
                  "label_column": label_column, "text_column": text_column, "path_column": path_column}
        if templates:
            fields["templates"] = list(templates)
        sets.append(make_eval_set(fields, "--images"))
    elif templates:
        raise UsageError("--template applies to --images", "in an eval-set file, set templates:")
    if world_dir is None and not sets:
        raise UsageError("nothing to evaluate on", "give --world DIR, --eval-set FILE.yaml or --images PATH")
    if world_dir is not None and not sets:  # as before: the world's metrics, flat
        from curate_train.evaluate import eval_zeroshot

        echo(json.dumps(eval_zeroshot(checkpoint, world_dir, model), indent=2), lines=True)
        return
    from curate_train.clip import load_clip
    from curate_train.evalsets import evaluate_sets

    if world_dir is not None:
        from curate_train.evaluate import check_world

        check_world(world_dir)
    import torch

    torch.manual_seed(0)
    network, preprocess, tokenizer = load_clip(checkpoint, model)
    results = {}
    if world_dir is not None:
        from curate_train.evaluate import eval_world

        results["world"] = eval_world(network, preprocess, tokenizer, world_dir)
    results.update(evaluate_sets(network, preprocess, tokenizer, sets))
    echo(json.dumps(results, indent=2), lines=True)


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
        raise click.ClickException(f"train diffusion needs diffusers: {pip_install('diffusion')}")
    from curate_train.diffusion import train_diffusion

    echo(json.dumps(train_diffusion(data_dir, clip_checkpoint, out, steps=steps, batch_size=batch_size,
                                    seed=seed, sample_steps=sample_steps,
                                    echo=lambda line: echo(line, err=True)), indent=2), lines=True)


EXPERIMENT_UNTRUSTED_HELP = (
    "The experiment comes from someone else (an experiment over a spec only): every variant's spec is planned "
    "as with `curate run --untrusted`; its base spec must lie in the experiment file's folder, its eval sets (and "
    "every image they list, links followed, a regular file) and training model inside the working directory, and "
    "it may use no storage URL but those --allow-remote allows.")


def _untrusted_options(command):
    command = allow_remote_option(command)
    return click.option("--untrusted", is_flag=True, help=EXPERIMENT_UNTRUSTED_HELP)(command)


def _refuse_untrusted_blend(spec: Path, untrusted: bool) -> None:
    """The world blend experiment (no ``spec:``) is not checked as untrusted: refused."""
    from curate.errors import UsageError

    if untrusted:
        raise UsageError(f"{spec} has no 'spec:' (the base curation spec): --untrusted is only for experiments "
                         "over a spec", "run the world blend experiment without --untrusted if you trust it")


@click.group()
def experiment() -> None:
    """Closed-loop experiments: curate once, train per variant, compare."""


@experiment.command("run")
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--run-dir", type=click.Path(path_type=Path), default=None,
              help="default: runs/NAME (its name:) in the folder above the spec's: specs/x.yaml → runs/NAME")
@click.option("--eval-only", is_flag=True, help="re-evaluate the trained variants of a finished run")
@click.option("--seeds", default=None, help="comma-separated seeds, overriding the spec's (e.g. 0,1,2,3,4)")
@_untrusted_options
def run_command(spec: Path, run_dir: Path | None, eval_only: bool, seeds: str | None, untrusted: bool,
                allow_remote: tuple[str, ...]) -> None:
    """Run an experiment: a base spec plus variants (a file with `spec:`; see curate_train's
    README), writing RUN_DIR/seed-N/VARIANT/result.json and RUN_DIR/experiment/summary.{json,md};
    or the world blend experiment (RUN_DIR/experiment/results.{json,md}, per seed with seeds)."""
    from curate_train.spec_experiment import is_spec_experiment

    chosen_seeds = None
    if seeds is not None:
        try:
            chosen_seeds = [int(part) for part in seeds.split(",") if part.strip()]
        except ValueError:
            raise click.BadParameter(f"{seeds!r}: expected comma-separated integers, e.g. 0,1,2",
                                     param_hint="--seeds") from None
    if is_spec_experiment(spec):
        from curate_train import spec_experiment

        loaded_experiment = spec_experiment.load(spec, untrusted, allow_remote)
        target = run_dir or spec.parent.parent / "runs" / loaded_experiment.experiment.name
        spec_experiment.run(loaded_experiment, target, chosen_seeds, echo=echo, eval_only=eval_only)
        echo((target / "experiment" / "summary.md").read_text(), lines=True)
        return
    _refuse_untrusted_blend(spec, untrusted)
    from curate_train.experiment import load, reevaluate, run

    loaded = load(spec)
    target = run_dir or spec.parent.parent / "runs" / loaded.name
    chosen = loaded.seeds if chosen_seeds is None else chosen_seeds
    if chosen:
        from curate_train.seeds import reevaluate_seeds, run_seeds

        (reevaluate_seeds if eval_only else run_seeds)(loaded, target, chosen, echo=echo)
        echo((target / "experiment" / "summary.md").read_text(), lines=True)
        return
    (reevaluate if eval_only else run)(loaded, target, echo=echo)
    echo((target / "experiment" / "results.md").read_text(), lines=True)


@experiment.command("validate")
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--run-dir", type=click.Path(path_type=Path), default=None,
              help="default: runs/NAME (its name:) in the folder above the spec's: specs/x.yaml → runs/NAME")
@_untrusted_options
def validate_command(spec: Path, run_dir: Path | None, untrusted: bool, allow_remote: tuple[str, ...]) -> None:
    """Check an experiment over a spec without running anything: its fields, every variant's
    patch (paths, step names), {model:...} references, each variant's plan (plugins, params,
    columns), the trained step and caption column, the eval sets. Exit 2 listing every problem."""
    from curate_train import spec_experiment

    from curate.errors import UsageError
    from curate.spec import read_spec_file

    read_spec_file(spec)  # a FIFO, a huge or a binary file is named as such, not as "no 'spec:'"
    if not spec_experiment.is_spec_experiment(spec):
        _refuse_untrusted_blend(spec, untrusted)
        raise UsageError(f"{spec} has no 'spec:' (the base curation spec)",
                         "validate checks experiments over a spec; the world blend experiment is checked by run")
    loaded = spec_experiment.load(spec, untrusted, allow_remote)
    target = run_dir or spec.parent.parent / "runs" / loaded.experiment.name
    checked = spec_experiment.validate(loaded, target)
    for name in checked["order"]:
        echo(f"ok {name}: " + " → ".join(checked["steps"][name]))


def add_commands(cli: click.Group) -> None:
    cli.add_command(train)
    cli.add_command(experiment)
