"""Train the world CLIP: generate a world, write shards, run ``open_clip_train.main``.

    curate clip train-world --out .curate/world-clip --export plugins/curate_clip/weights/world-clip-tiny.safetensors
    (the same as: python -m curate_clip.training.train ...)

The world used for training (seed 1000 by default) is not the one the quickstart curates
(seed 0) nor the held-out one the evaluation uses (seed 2000). open_clip_train runs in this
process (``open_clip_train.main.main(argv)``, the function ``python -m open_clip_train.main``
calls) because the world CLIP's config must be registered with open_clip first.

One torch thread by default: on a small shared CPU, two threads that wait on each other are
several times slower than one.
"""

from __future__ import annotations

import contextlib
import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from curate_clip.models import CONFIG_DIR, WORLD_MODEL
from curate_clip.training import click_help, invoked_args, namespace, run_command

from curate.display import echo


def open_clip_args(pattern: str, samples: int, logs: Path, epochs: int, batch_size: int, lr: float,
                   workers: int, seed: int, model: str = WORLD_MODEL, warmup: int = 50) -> list[str]:
    return [
        "--train-data", pattern,
        "--dataset-type", "webdataset",
        "--train-num-samples", str(samples),
        "--model", model,
        "--batch-size", str(batch_size),
        "--epochs", str(epochs),
        "--lr", str(lr),
        "--wd", "0.1",
        "--warmup", str(warmup),
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


def siglip_init(checkpoint: Path, out: Path) -> Path:
    """A softmax-CLIP checkpoint made a SigLIP starting point: its towers, with the logit scale
    and bias at SigLIP's initialisation (10 and -10). Loaded as they are (scale 100, no bias, so
    open_clip fills in 0), every one of a batch's n² - n negative pairs starts with a logit
    around +50 and a loss in the hundreds, and the first steps wreck the towers (measured:
    held-out AUC 0.910 → 0.761 after one epoch)."""
    import math

    import torch

    state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    prefix = "module." if any(k.startswith("module.") for k in state) else ""
    scale = state[prefix + "logit_scale"]
    state[prefix + "logit_scale"] = torch.full_like(scale, math.log(10.0))
    state[prefix + "logit_bias"] = torch.full_like(scale, -10.0)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state}, str(out))
    return out


def model_config_problem(path: Path) -> str | None:
    """What is wrong with a ``--model-config`` file, checked as a ``local-dir:`` folder's config is
    (checkpoints.config_problems): open_clip_train builds its tokenizer from the config, and one with
    ``hf_tokenizer_name`` and ``tokenizer_kwargs: {trust_remote_code: true}`` imported the Python
    file a folder's tokenizer_config.json names."""
    from curate_clip.checkpoints import _read_config, config_problems

    name = str(path)
    config, problem = _read_config(name, path)
    if problem:
        return problem
    return "; ".join(config_problems(name, config, local=True)) or None


@contextlib.contextmanager
def sample_shuffle(size: int | None) -> Iterator[None]:
    """Within the block, open_clip_train builds its WebDataset pipeline with a sample shuffle
    buffer of ``size`` (None: its own default). It reads two module constants when it builds the
    pipeline and has no command-line flag for them; they are restored on leaving, so a run does
    not change the next one in the same process."""
    import open_clip_train.data as wds_data

    if size is not None and size < 1:
        raise SystemExit(f"--sample-shuffle must be at least 1 (got {size})")
    saved = wds_data._SAMPLE_SHUFFLE_SIZE, wds_data._SAMPLE_SHUFFLE_INITIAL
    if size is not None:
        wds_data._SAMPLE_SHUFFLE_SIZE = size
        wds_data._SAMPLE_SHUFFLE_INITIAL = min(size, wds_data._SAMPLE_SHUFFLE_INITIAL)
    try:
        yield
    finally:
        wds_data._SAMPLE_SHUFFLE_SIZE, wds_data._SAMPLE_SHUFFLE_INITIAL = saved


PATH = click.Path(path_type=Path)


@click.command("train-world", help=click_help(__doc__))
@click.option("--out", type=PATH, default=Path(".curate/world-clip"), show_default=True)
@click.option("--n", type=int, default=10000, show_default=True, help="images in the training world")
@click.option("--texts-per-image", type=int, default=3, show_default=True)
@click.option("--families", type=int, default=0, show_default=True,
              help="train on this many minimal-pair families instead of a world (training/families.py)")
@click.option("--pairs", type=int, default=0, show_default=True,
              help="train on this many minimal pairs instead (training/pairs.py): a scene with any true text, "
                   "next to the scene its wrong-attribute alt-text is true of; use with --sample-shuffle 1 and an"
                   " even batch size so each pair shares a batch")
@click.option("--pair-scenes", type=click.Choice(["any", "train"]), default="any", show_default=True,
              help="with --pairs: the scenes pairs draw from; 'train' keeps both scenes of a pair in the world's "
                   "train partition, so no held-out world shows them")
@click.option("--pair-partial", type=float, default=0.0, show_default=True,
              help="with --pairs: share of pairs whose true text is one of the world's partial alt-texts")
@click.option("--pair-web-style", type=float, default=0.0, show_default=True,
              help="with --pairs: probability that each text of a pair is written in the world's web styles "
                   "(capitals, stock framing, SEO lists, synonyms…)")
@click.option("--pair-shape", type=float, default=0.0, show_default=True,
              help="with --pairs: share of pairs whose wrong-attribute text gets a shape wrong (the rest: "
                   "whatever the world's writer changes)")
@click.option("--family-size", type=int, default=8, show_default=True,
              help="scenes per family: a scene and its one-change variants")
@click.option("--family-walk", is_flag=True,
              help="each variant changes one thing of any earlier member, not of the first scene")
@click.option("--family-full-texts", is_flag=True,
              help="family members get only texts that name every object (no partial ones)")
@click.option("--singles", type=float, default=0.0, show_default=True,
              help="random unrelated scenes (any true text) per family member, between families")
@click.option("--family-focused", type=float, default=0.0, show_default=True,
              help="share of variants whose text names only what the variant changed (true of it, false of its "
                   "siblings)")
@click.option("--sample-shuffle", type=int, default=None,
              help="open_clip_train's sample shuffle buffer (5,000 by default, a module constant with no flag): "
                   "with families, a buffer near the batch size keeps siblings in the same batch, so each image's"
                   " in-batch negatives include texts wrong about one attribute of it")
@click.option("--siglip", is_flag=True,
              help="open_clip_train's sigmoid loss: every image-text pair is judged on its own, so the score is "
                   "calibrated across images (what a threshold filter needs)")
@click.option("--init", type=PATH, default=None,
              help="start from this checkpoint (open_clip_train --pretrained), e.g. an earlier run's epoch_N.pt")
@click.option("--synonym-init", is_flag=True,
              help="with --init: start the web's one-token synonyms of colours and shapes (violet, grey, disc…) "
                   "from their canonical word's token embedding (training/synonyms.py)")
@click.option("--seed", type=int, default=1000, show_default=True)
@click.option("--epochs", type=int, default=3, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True,
              help="torch threads of the training process")
@click.option("--model-config", type=PATH, default=None,
              help="train another open_clip config (JSON; its file name is the model name)")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--warmup", type=int, default=50, show_default=True, help="warmup steps")
@click.option("--workers", type=int, default=1, show_default=True)
@click.option("--export", type=PATH, default=None, help="write the final weights here (safetensors)")
@click.pass_context
def command(ctx: click.Context, **options: Any) -> None:
    """``curate clip train-world``, also ``python -m curate_clip.training.train``."""
    args = namespace(ctx, options)
    argv = invoked_args(ctx, "train-world")
    if args.families and args.pairs:
        raise SystemExit("--families and --pairs are two kinds of training data: give one of them")
    if args.pairs and args.batch_size % 2:
        raise SystemExit(f"--pairs needs an even --batch-size so no pair is split across batches "
                         f"(got {args.batch_size})")
    if args.pairs:
        from curate_clip.training.pairs import PairMix

        try:
            mix = PairMix(scenes=args.pair_scenes, partial=args.pair_partial, web_style_rate=args.pair_web_style,
                          shape=args.pair_shape)
        except ValueError as exc:
            raise SystemExit(f"--pair-partial, --pair-web-style, --pair-shape: {exc}") from None
    if args.model_config is not None:
        problem = model_config_problem(args.model_config)
        if problem:
            raise SystemExit(f"--model-config: {problem}")

    import json
    import time

    import open_clip
    import torch
    from curate_world.api import generate_world

    from curate_clip.training.data import write_shards

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    if args.pairs:
        from curate_clip.training.pairs import write_pair_shards

        pattern, samples = write_pair_shards(args.out / "shards", pairs=args.pairs, seed=args.seed, mix=mix)
    elif args.families:
        from curate_clip.training.families import write_family_shards

        pattern, samples = write_family_shards(args.out / "shards", families=args.families, size=args.family_size,
                                               seed=args.seed, walk=args.family_walk,
                                               full_texts=args.family_full_texts, singles=args.singles,
                                               focused=args.family_focused)
    else:
        world = generate_world(args.out / "world", n=args.n, seed=args.seed, fault_rate=0.0, dup_fraction=0.0)
        pattern, samples = write_shards(world.dir, args.out / "shards", texts_per_image=args.texts_per_image,
                                        seed=args.seed)
    if samples < args.batch_size:  # open_clip_train drops a partial batch and reads the shards again, forever
        raise SystemExit(f"the training data holds {samples} samples, fewer than one batch of {args.batch_size}: "
                         "lower --batch-size, or raise --n (--pairs, --families)")
    prepared = time.perf_counter()
    open_clip.add_model_config(str(CONFIG_DIR))
    model = WORLD_MODEL
    if args.model_config is not None:
        open_clip.add_model_config(str(args.model_config))
        model = args.model_config.stem
    logs = args.out / "logs"
    import shutil

    shutil.rmtree(logs / "world-clip", ignore_errors=True)
    from open_clip_train.main import main as train_main

    train_args = open_clip_args(pattern, samples, logs, args.epochs, args.batch_size, args.lr, args.workers,
                                args.seed, model, args.warmup)
    synonyms = None
    if args.synonym_init and args.init is None:
        raise SystemExit("--synonym-init edits the --init checkpoint: give --init too")
    if args.init is not None:
        init = args.init
        if args.synonym_init:
            from curate_clip.training.synonyms import synonym_init

            init, synonyms = synonym_init(init, args.out / "init-synonyms.pt")
            echo(f"synonym init: {synonyms}")
        init = siglip_init(init, args.out / "init-siglip.pt") if args.siglip else init
        train_args += ["--pretrained", str(init)]
    if args.siglip:
        train_args += ["--siglip"]
    echo("open_clip_train.main " + " ".join(train_args))
    with sample_shuffle(args.sample_shuffle):
        train_main(train_args)
    finished = time.perf_counter()
    checkpoints = sorted(glob.glob(str(logs / "world-clip" / "checkpoints" / "epoch_[0-9]*.pt")),
                         key=lambda path: int(Path(path).stem.split("_")[1]))
    if not checkpoints:
        echo("training produced no checkpoint", err=True)
        ctx.exit(1)
    if args.export is not None:
        from curate_clip.models import export_safetensors

        export_safetensors(Path(checkpoints[-1]), args.export)
        echo(f"exported {checkpoints[-1]} → {args.export}")
    record = {
        "command": "curate clip train-world " + " ".join(argv),
        "open_clip_train_args": train_args,
        "data": ({"pairs": args.pairs, "sample_shuffle": args.sample_shuffle, "seed": args.seed,
                  "pair_scenes": args.pair_scenes, "pair_partial": args.pair_partial,
                  "pair_web_style": args.pair_web_style, "pair_shape": args.pair_shape} if args.pairs
                 else {"families": args.families, "family_size": args.family_size, "walk": args.family_walk,
                  "full_texts": args.family_full_texts, "singles": args.singles, "focused": args.family_focused,
                  "sample_shuffle": args.sample_shuffle, "seed": args.seed} if args.families
                 else {"world_n": args.n, "seed": args.seed, "texts_per_image": args.texts_per_image}),
        "synonym_init": synonyms,
        "samples_per_epoch": samples,
        "threads": args.threads,
        "seconds": {"world_and_shards": round(prepared - started, 1), "open_clip_train": round(finished - prepared, 1)},
    }
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    return run_command(command, argv, "curate clip train-world")


if __name__ == "__main__":
    command(prog_name="curate clip train-world")
