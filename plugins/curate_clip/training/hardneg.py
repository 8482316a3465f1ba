"""Fine-tune the world CLIP with hard negatives (NegCLIP-style), so its score catches wrong attributes.

    curate clip tune-world --init .curate/world-clip/logs/world-clip/checkpoints/epoch_4.pt \\
        --export plugins/curate_clip/weights/world-clip-tiny.safetensors

Contrastive training with in-batch negatives only teaches a CLIP to tell *scenes* apart, and in
a batch of random scenes colour alone does that: the open_clip_train model scores an alt-text
with one swapped colour, shape or count as high as a true one (AUC 0.5 on ``wrong_attribute``).
Here every image in a batch also brings a text that is true except for one attribute (the
world's own ``write_wrong_attribute``), and a few junk texts (boilerplate, empty) join the pool:
the image-to-text softmax runs over all of them, so the model has to read every attribute, and
junk has to score low in absolute terms, which is what a threshold on the score needs.

The model is open_clip's (``create_model_and_transforms``), loss and schedule are the standard
ones; only the batch construction is ours, because open_clip_train has no hard-negative input.
Images are decoded and resized once and kept in memory as uint8 (10k images at 64 px: 120 MB).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from curate_clip.training import click_help, invoked_args, namespace, run_command

from curate.atomic import atomic_path
from curate.display import echo

if TYPE_CHECKING:  # numpy loads with the command, not with `curate --help`
    import numpy as np


def load_world(world_dir: Path, image_size: int) -> tuple[Any, list[Any]]:
    """All images of a generated world as a uint8 tensor (N, 3, S, S), and their scenes."""
    import numpy as np
    import polars as pl
    import torch
    from curate_world.api import parse_description
    from PIL import Image

    table = pl.read_parquet(world_dir / "world.parquet").select("image_path", "description")
    pixels = torch.empty((table.height, 3, image_size, image_size), dtype=torch.uint8)
    scenes = []
    for index, (image_path, description) in enumerate(table.iter_rows()):
        with Image.open(world_dir / image_path) as image:
            small = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BICUBIC)
        pixels[index] = torch.from_numpy(np.asarray(small).copy()).permute(2, 0, 1)
        scenes.append(parse_description(description))
    return pixels, scenes


def batch_texts(scenes: list[Any], rng: np.random.Generator, junk: int) -> tuple[list[str], list[str], list[str]]:
    """One true text and one wrong-attribute text per scene, and ``junk`` junk texts."""
    from curate_world.api import write_boilerplate, write_wrong_attribute

    from curate_clip.training.data import scene_texts

    positives, negatives = [], []
    for scene in scenes:
        name_entity = scene.entity is not None and bool(rng.random() < 0.85)
        # true_texts' first three are: full description, faithful alt-text, shapes only; then more
        texts = scene_texts(scene, 5, rng)
        positives.append(texts[int(rng.integers(len(texts)))])
        negatives.append(write_wrong_attribute(scene, rng, name_entity).text)
    garbage = ["" if rng.random() < 0.3 else write_boilerplate(rng).text for _ in range(junk)]
    return positives, negatives, garbage


def normalize(pixels: Any, mean: Any, std: Any) -> Any:
    return (pixels.float() / 255.0 - mean) / std


def train(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import open_clip
    import torch
    import torch.nn.functional as F
    from curate_world.api import generate_world

    from curate_clip.models import WORLD_MODEL, load_state_dict, register_configs

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    world_dir = args.world
    if not (world_dir / "world.parquet").exists():
        world_dir = generate_world(world_dir, n=args.n, seed=args.world_seed, fault_rate=0.0, dup_fraction=0.0).dir
    register_configs()
    model, _, _ = open_clip.create_model_and_transforms(WORLD_MODEL, pretrained=None, device="cpu")
    if args.init is not None:
        model.load_state_dict(load_state_dict(args.init), strict=True)
    tokenizer = open_clip.get_tokenizer(WORLD_MODEL)
    size = model.visual.image_size[0] if isinstance(model.visual.image_size, tuple) else model.visual.image_size
    pixels, scenes = load_world(world_dir, size)
    mean = torch.tensor(model.visual.image_mean or open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(model.visual.image_std or open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    loaded = time.perf_counter()

    from open_clip_train.scheduler import cosine_lr

    # weight decay on matrices only: not on gains, biases, embeddings or the logit scale
    decayed = {n for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n and "logit" not in n}
    groups = [{"params": [p for n, p in model.named_parameters() if (n in decayed) == wanted], "weight_decay": wd}
              for wanted, wd in ((True, 0.1), (False, 0.0))]
    optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    set_lr = cosine_lr(optimizer, args.lr, args.warmup, args.steps)  # open_clip_train's schedule

    model.train()
    log: list[dict[str, Any]] = []
    running = None
    for step in range(args.steps):
        lr = set_lr(step)
        chosen = rng.choice(len(scenes), size=args.batch_size, replace=False)
        positives, negatives, garbage = batch_texts([scenes[i] for i in chosen], rng, args.junk)
        images = normalize(pixels[torch.from_numpy(chosen)], mean, std)
        # light photometric jitter, so the model does not key on exact pixel values
        images = images * (1 + 0.1 * torch.randn(len(chosen), 1, 1, 1)) + 0.1 * torch.randn(len(chosen), 3, 1, 1)
        tokens = tokenizer(positives + negatives + garbage)
        image_features = F.normalize(model.encode_image(images), dim=-1)
        text_features = F.normalize(model.encode_text(tokens), dim=-1)
        scale = model.logit_scale.exp()
        count = len(chosen)
        target = torch.arange(count)
        # image -> text over true texts, every image's hard negative, and junk
        image_to_text = scale * image_features @ text_features.T
        # text -> image over the batch's images (true texts only)
        text_to_image = scale * text_features[:count] @ image_features.T
        loss = (F.cross_entropy(image_to_text, target) + F.cross_entropy(text_to_image, target)) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
            own = image_to_text[target, target]
            hard = image_to_text[target, target + count]
            hard_win = float((own > hard).float().mean())
        value = loss.item()
        running = value if running is None else 0.95 * running + 0.05 * value
        if step % args.log_every == 0 or step == args.steps - 1:
            entry = {"step": step, "loss": round(running, 4), "beats_hard_negative": round(hard_win, 3),
                     "lr": round(lr, 6), "logit_scale": round(float(scale), 2),
                     "seconds": round(time.perf_counter() - loaded, 1)}
            log.append(entry)
            echo(json.dumps(entry))
        if args.checkpoint_every and step and step % args.checkpoint_every == 0:
            save(model, args.out / "checkpoint.pt", step)
    save(model, args.out / "checkpoint.pt", args.steps)
    return {"world": str(world_dir), "images": len(scenes), "load_seconds": round(loaded - started, 1),
            "train_seconds": round(time.perf_counter() - loaded, 1), "log": log}


def save(model: Any, path: Path, step: int) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save({"state_dict": model.state_dict(), "step": step}, tmp)


PATH = click.Path(path_type=Path)


@click.command("tune-world", help=click_help(__doc__))
@click.option("--world", type=PATH, default=Path(".curate/world-clip/world"), show_default=True,
              help="a generated world to train on (generated here when missing)")
@click.option("--n", type=int, default=10000, show_default=True, help="images, when the world is generated")
@click.option("--world-seed", type=int, default=1000, show_default=True)
@click.option("--init", type=PATH, default=None, help="start from these weights (.pt or .safetensors)")
@click.option("--out", type=PATH, default=Path(".curate/world-clip/hardneg"), show_default=True)
@click.option("--steps", type=int, default=2000, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--junk", type=int, default=16, show_default=True, help="junk texts (boilerplate, empty) per batch")
@click.option("--lr", type=float, default=5e-4, show_default=True)
@click.option("--warmup", type=int, default=50, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--log-every", type=int, default=25, show_default=True)
@click.option("--checkpoint-every", type=int, default=100, show_default=True)
@click.option("--export", type=PATH, default=None, help="write the final weights here (float16 safetensors)")
@click.pass_context
def command(ctx: click.Context, **options: Any) -> None:
    """``curate clip tune-world``, also ``python -m curate_clip.training.hardneg``."""
    args = namespace(ctx, options)
    argv = invoked_args(ctx, "tune-world")
    record = train(args)
    if args.export is not None:
        from curate_clip.models import export_safetensors

        export_safetensors(args.out / "checkpoint.pt", args.export)
    record["command"] = "curate clip tune-world " + " ".join(argv)
    record["params"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    return run_command(command, argv, "curate clip tune-world")


if __name__ == "__main__":
    command(prog_name="curate clip tune-world")
