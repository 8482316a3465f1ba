"""``curate captioner train|eval|caption``. Heavy imports happen inside the commands, because
``curate --help`` loads every plugin."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click

from curate_captioner.config import TEMPERATURE, TOP_P, CaptionerConfig, TrainConfig, defaults

from curate.display import echo, visible

# Defaults come from the config models (one source): TrainConfig for a training stage,
# CaptionerConfig for a new captioner's architecture.
TRAIN = defaults(TrainConfig)
ARCH = defaults(CaptionerConfig)
# A new captioner from this command gets a smaller mapper than CaptionerConfig's default (a tiny
# decoder of width 128 needs no wider one); the values this command always had.
NEW_MAPPER = {"mapper_width": 128, "mapper_layers": 1}


def _choices(model: type, field: str) -> click.Choice:
    """The values of a Literal field, as a click choice."""
    from typing import get_args

    return click.Choice(list(get_args(model.model_fields[field].annotation)))


@click.group("captioner")
def captioner() -> None:
    """Train, evaluate and run the realignment captioner (Altogether)."""


def _threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def _training_table(world: str | None, table: str | None, stage: int, columns: dict[str, str | None]):  # type: ignore[no-untyped-def]
    import polars as pl

    from curate_captioner.data import world_table
    from curate_captioner.errors import CaptionerError

    if (world is None) == (table is None):
        raise CaptionerError("give exactly one of --world and --table")
    if world is not None:
        return world_table(world, stage)
    frame = pl.read_parquet(table)
    picked = {"image": columns["image"], "alt_text": columns["alt_text"]}
    if stage == 2:
        picked["caption"] = columns["caption"]
    if columns.get("group"):
        picked["group"] = columns["group"]
    missing = [source for source in picked.values() if source not in frame.columns]
    if missing:
        raise CaptionerError(f"{table} has no column(s) {missing}", f"columns: {', '.join(frame.columns)}")
    frame = frame.select([pl.col(source).alias(name) for name, source in picked.items()])
    return frame.filter(pl.col("image").is_not_null())


def new_captioner(texts: list[str], options: dict[str, Any]):  # type: ignore[no-untyped-def]
    """A fresh captioner: an open_clip tower, and a tiny decoder with a BPE tokenizer trained on
    ``texts`` (or a local pretrained decoder with its own tokenizer)."""
    from curate_captioner.config import CaptionerConfig
    from curate_captioner.encoder import from_open_clip
    from curate_captioner.model import Captioner, load_pretrained_decoder, tiny_decoder
    from curate_captioner.tokenizer import train_tokenizer

    encoder = options["encoder"]
    tuned = _tune_record(encoder) if encoder != "world-clip" else None
    if encoder == "world-clip":
        from curate_captioner.worldclip import world_clip_tower

        tower, encoder_config = world_clip_tower()
    else:
        tower, encoder_config = from_open_clip(encoder, options.get("encoder_checkpoint"), source=str((tuned or {}).get("source") or "") or None)
    decoder_spec = options["decoder"]
    if decoder_spec.startswith("tiny-"):
        tokenizer = train_tokenizer(texts, vocab_size=options["vocab_size"])
        decoder = tiny_decoder(len(tokenizer), hidden=options["decoder_hidden"], layers=options["decoder_layers"],
                               heads=options["decoder_heads"], kind=decoder_spec.removeprefix("tiny-"))
    else:
        decoder, tokenizer = load_pretrained_decoder(decoder_spec)
    config = CaptionerConfig(features=options["features"], max_patch_tokens=options["max_patch_tokens"],
                             mapper_width=options["mapper_width"],
                             mapper_layers=options["mapper_layers"], mapper_heads=options["mapper_heads"],
                             prefix_length=options["prefix_length"], name=options["name"])
    model = Captioner.create(tower, encoder_config, decoder, tokenizer, config)
    if tuned is not None:  # how the tower was tuned travels with the captioner
        model.training_facts["encoder"] = {k: tuned.get(k) for k in ("command", "world", "val_world", "train_rows", "val")}
    return model


def _tune_record(encoder: str) -> dict[str, Any] | None:
    """What `tune-world-encoder` recorded about the tower in ENCODER's folder, if it wrote it."""
    from curate_captioner.worldencoder import RECORD_FILE

    record = Path(encoder).parent / RECORD_FILE
    if Path(encoder).suffix != ".json" or not record.is_file():
        return None
    return dict(json.loads(record.read_text()))


def _train_config(**options: Any) -> TrainConfig:
    """The options as a training stage, or exit 2 naming each option out of its bounds (before any
    data or model is loaded; pydantic's error was an internal error after both)."""
    from pydantic import ValidationError

    from curate.errors import UsageError
    from curate.spec import problems_from_validation

    try:
        return TrainConfig(**options)
    except ValidationError as exc:
        raise UsageError("; ".join(f"--{str(loc[0]).replace('_', '-')}: {message}"
                                   for loc, message in problems_from_validation(exc))) from None


@captioner.command()
@click.option("--stage", type=click.IntRange(1, 2), required=True, help="1: pre-train on alt-text; 2: fine-tune on realigned captions.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Where the trained captioner is written.")
@click.option("--world", type=click.Path(file_okay=False, exists=True), help="Train on a generated world's train split.")
@click.option("--table", type=click.Path(dir_okay=False, exists=True), help="Train on a Parquet table.")
@click.option("--image-column", default="image", show_default=True, help="Local image paths (with --table).")
@click.option("--alt-text-column", default="alt_text", show_default=True)
@click.option("--caption-column", default="caption", show_default=True, help="Stage 2 targets (with --table).")
@click.option("--group-column", default=None, help="Stage 1: rows of the same image (with --table).")
@click.option("--init", "init", default=None, help="Captioner directory to start from (stage 2: stage 1's --out).")
@click.option("--encoder", default="world-clip", show_default=True, help="New captioner: 'world-clip', an open_clip config name or JSON.")
@click.option("--encoder-checkpoint", default=None, help="Local CLIP weights for --encoder (never downloaded).")
@click.option("--decoder", default="tiny-llama", show_default=True, help="New captioner: tiny-llama|tiny-gpt2|tiny-opt or a local pretrained LM directory.")
@click.option("--decoder-hidden", default=128, show_default=True)
@click.option("--decoder-layers", default=3, show_default=True)
@click.option("--decoder-heads", default=4, show_default=True)
@click.option("--vocab-size", default=768, show_default=True, help="BPE vocabulary of a tiny decoder's tokenizer.")
@click.option("--features", type=_choices(CaptionerConfig, "features"), default=ARCH["features"], show_default=True)
@click.option("--max-patch-tokens", default=ARCH["max_patch_tokens"], show_default=True,
              help="With pooled+tokens: pool patch tokens to at most this many.")
@click.option("--mapper-width", default=NEW_MAPPER["mapper_width"], show_default=True)
@click.option("--mapper-layers", default=NEW_MAPPER["mapper_layers"], show_default=True)
@click.option("--mapper-heads", default=ARCH["mapper_heads"], show_default=True)
@click.option("--prefix-length", default=ARCH["prefix_length"], show_default=True)
@click.option("--name", default=ARCH["name"], show_default=True, help="Recorded in the caption_model column.")
@click.option("--steps", default=TRAIN["steps"], show_default=True)
@click.option("--batch-size", default=TRAIN["batch_size"], show_default=True)
@click.option("--lr", default=TRAIN["lr"], show_default=True)
@click.option("--warmup", default=TRAIN["warmup"], show_default=True)
@click.option("--seed", default=TRAIN["seed"], show_default=True)
@click.option("--log-every", default=TRAIN["log_every"], show_default=True)
@click.option("--checkpoint-every", default=TRAIN["checkpoint_every"], show_default=True)
@click.option("--resume/--no-resume", default=True, show_default=True, help="Continue from OUT/checkpoint if present.")
@click.option("--device", default=TRAIN["device"], show_default=True)
@click.option("--precision", type=_choices(TrainConfig, "precision"), default=TRAIN["precision"], show_default=True)
@click.option("--threads", default=None, type=int, help="torch CPU threads (1 is fastest on a crowded machine).")
@click.option("--max-rows", default=None, type=int, help="Train on a seeded random sample of this many rows.")
@click.option("--feature-cache", default=None, type=click.Path(file_okay=False), help="Reuse encoder features across runs.")
@click.option("--train-encoder/--frozen-encoder", default=TRAIN["train_encoder"], show_default=True,
              help="Also train the open_clip tower (Altogether freezes it; a tiny tower may not see enough).")
@click.option("--encoder-lr", default=TRAIN["encoder_lr"], type=float, help="Peak lr of a trained encoder (default: --lr).")
@click.option("--encoder-image-size", default=None, type=int,
              help="Run the ViT tower at this input size (position embeddings interpolated): more patch tokens.")
@click.option("--image-dropout", default=0.0, show_default=True, help="Share of examples without their image (so realign can use guidance).")
def train(stage: int, out: str, world: str | None, table: str | None, image_column: str, alt_text_column: str,
          caption_column: str, group_column: str | None, init: str | None, steps: int, batch_size: int, lr: float,
          warmup: int, seed: int, log_every: int, checkpoint_every: int, resume: bool, device: str, precision: str,
          threads: int | None, max_rows: int | None, feature_cache: str | None, train_encoder: bool,
          encoder_lr: float | None, encoder_image_size: int | None, image_dropout: float, **options: Any) -> None:
    """Train one stage of a captioner and save it to OUT."""
    from curate_captioner.config import require_local_directory, require_tokenizer_files, resolve_model_path
    from curate_captioner.modelfiles import check_captioner_directory

    config = _train_config(stage=stage, steps=steps, batch_size=batch_size, lr=lr, warmup=warmup, seed=seed,
                           log_every=log_every, checkpoint_every=checkpoint_every, device=device, precision=precision,
                           train_encoder=train_encoder, encoder_lr=encoder_lr, image_dropout=image_dropout)
    # Fail on a hub id, a missing directory or a captioner that cannot load before the slow imports below.
    if init is not None:
        check_captioner_directory(resolve_model_path(init))
    elif not options["decoder"].startswith("tiny-"):
        require_tokenizer_files(require_local_directory(options["decoder"], "decoder"))
    _threads(threads)
    from curate_captioner.model import Captioner
    from curate_captioner.train import train as run_training

    started = time.perf_counter()
    frame = _training_table(world, table, stage, {"image": image_column, "alt_text": alt_text_column,
                                                   "caption": caption_column, "group": group_column})
    if max_rows is not None and frame.height > max_rows:
        frame = frame.sample(max_rows, seed=seed, shuffle=False)
    if init is not None:
        model = Captioner.load(init)
    else:
        import torch

        torch.manual_seed(seed)  # a random encoder or decoder is reproducible too
        texts = [t for t in frame["alt_text"].to_list() if t]
        if "caption" in frame.columns:
            texts += [t for t in frame["caption"].to_list() if t]
        model = new_captioner(texts, options)
    if encoder_image_size is not None:
        model.set_encoder_image_size(encoder_image_size)
    command = "curate captioner train " + " ".join(shlex.quote(a) for a in sys.argv[sys.argv.index("train") + 1:]) \
        if "train" in sys.argv else None
    summary = run_training(model, frame, config, out, resume=resume, log=lambda line: echo(line, err=True),
                           facts={"command": command, "wall_seconds_with_setup": None}, feature_cache=feature_cache)
    summary["wall_seconds_with_setup"] = round(time.perf_counter() - started, 1)
    echo(json.dumps({k: v for k, v in summary.items() if k != "config"}))


@captioner.command("tune-world-encoder")
@click.option("--world", required=True, type=click.Path(file_okay=False, exists=True), help="A generated world (its train split).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Where the open_clip config and weights go.")
@click.option("--steps", default=4000, show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--image-size", default=None, type=int, help="Run the tower at this input size (default: its own).")
@click.option("--flip/--no-flip", default=True, show_default=True, help="Mirror half of each batch (labels follow).")
@click.option("--val-world", default=None, type=click.Path(file_okay=False, exists=True),
              help="Measure on this world's val scenes (default: --world's); train rows showing one of them are left out.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=None, type=int)
def tune_world_encoder(world: str, out: str, steps: int, batch_size: int, lr: float, image_size: int | None, flip: bool,
                       val_world: str | None, seed: int, threads: int | None) -> None:
    """Tune the world CLIP's vision tower on the world's object labels (shape, colour, size, logo at
    each grid position) and write it as an open_clip checkpoint for `captioner train --encoder`."""
    _threads(threads)
    from curate_captioner.worldencoder import CONFIG_FILE, WEIGHTS_FILE
    from curate_captioner.worldencoder import tune_world_encoder as run

    command = "curate captioner " + " ".join(shlex.quote(a) for a in sys.argv[sys.argv.index("tune-world-encoder"):]) \
        if "tune-world-encoder" in sys.argv else None
    record = run(world, out, steps=steps, batch_size=batch_size, lr=lr, image_size=image_size, seed=seed, flip=flip,
                 val_world=val_world, log=lambda line: echo(line, err=True), command=command)
    echo(json.dumps({"val": record["val"], "seconds": record["seconds"],
                     "use": f"--encoder {Path(out) / CONFIG_FILE} --encoder-checkpoint {Path(out) / WEIGHTS_FILE}"}))


@captioner.command("eval")
@click.option("--world", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--model", default="world", show_default=True)
@click.option("--split", default="val", show_default=True, help="world.parquet split to score (val is held out).")
@click.option("--limit", default=None, type=int, help="Score only the first N rows.")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Write EVAL.md and EVAL.json here.")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=None, type=int)
@click.option("--copy-bias", default=None, type=float, help="logit bias on the alt-text's tokens (default: the model's)")
def evaluate(world: str, model: str, split: str, limit: int | None, out: str | None, batch_size: int, seed: int,
             threads: int | None, copy_bias: float | None) -> None:
    """Score realigned captions against a world's ground truth (attributes, entities, CLIP score)."""
    _threads(threads)
    from curate_captioner.evaluate import evaluate_world, write_report

    result = evaluate_world(world, model, split=split, limit=limit, batch_size=batch_size, seed=seed,
                            log=lambda line: echo(line, err=True), copy_bias=copy_bias)
    if out is not None:
        write_report(result, Path(out))
    echo(json.dumps(result["summary"], indent=2), lines=True)


@captioner.command("select-copy-bias")
@click.option("--world", required=True, type=click.Path(file_okay=False, exists=True),
              help="A selection world (its val split): not the one the captioner is reported on.")
@click.option("--model", required=True, type=click.Path(file_okay=False, exists=True), help="A trained captioner folder.")
@click.option("--values", default="0,1,2,3", show_default=True, help="Copy biases to try, comma separated.")
@click.option("--min-retention", default=0.90, show_default=True, help="Entity retention the chosen bias must keep.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=None, type=int)
def select_copy_bias(world: str, model: str, values: str, min_retention: float, seed: int, threads: int | None) -> None:
    """Pick the copy bias with the best attribute accuracy that keeps entity retention, and write it into MODEL."""
    from curate_captioner.errors import CaptionerError

    try:
        tried = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise CaptionerError(f"--values {values!r} is not a comma-separated list of numbers", "e.g. --values 0,1,2,3") from None
    _threads(threads)
    from curate_captioner.copybias import select_copy_bias as run

    record = run(world, model, tried, min_retention=min_retention, seed=seed, log=lambda line: echo(line, err=True))
    echo(json.dumps({"copy_bias": record["chosen"], "results": record["results"]}))


@captioner.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--model", default="world", show_default=True)
@click.option("--alt-text", "alt_texts", multiple=True, help="Alt-text(s) of the images (repeat; joined with '; ').")
@click.option("--temperature", default=TEMPERATURE, show_default=True)
@click.option("--top-p", default=TOP_P, show_default=True)
@click.option("--seed", default=0, show_default=True)
def caption(images: tuple[str, ...], model: str, alt_texts: tuple[str, ...], temperature: float, top_p: float, seed: int) -> None:
    """Caption IMAGES (each with the same --alt-text prompt, or none)."""
    from curate_captioner.config import ALT_TEXT_SEPARATOR
    from curate_captioner.data import open_images
    from curate_captioner.generate import decode, generate
    from curate_captioner.model import Captioner

    captioner_model = Captioner.load(model)
    opened = open_images(list(images))
    prefix = captioner_model.prefix(*captioner_model.image_features(opened))
    prompt = ALT_TEXT_SEPARATOR.join(alt_texts)
    ids = generate(captioner_model, prefix, [prompt] * len(opened), temperature=temperature, top_p=top_p, seed=seed,
                   copy_bias=captioner_model.config.copy_bias)
    for path, text in zip(images, decode(captioner_model, ids), strict=True):
        # Each escaped on its own: a tab or newline in a file name or caption adds no column or line.
        echo(f"{visible(path)}\t{visible(text)}", lines=True)
