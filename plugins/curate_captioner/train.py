"""Training a captioner: one stage at a time, with checkpoints, resume, mixed precision on GPU,
and a JSON-lines log of loss, learning rate and throughput.

    out/                       the trained captioner (a captioner directory) when done
    out/checkpoint/            the latest checkpoint: a captioner directory + trainer_state.pt
    out/train_log.jsonl        one line per logged step

By default the encoder is frozen (Altogether), so its features are computed once up front and the
mapping network and the decoder train. With ``train_encoder`` the open_clip tower trains too, at
``encoder_lr``: the images are decoded and preprocessed once, and the tower runs on every step — for
a small tower whose frozen features do not hold every object's shape (the world CLIP). Each epoch draws fresh prompts (see :mod:`curate_captioner.data`), from a generator
seeded by (seed, epoch), so a resumed run sees the same examples as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import torch

from curate.atomic import atomic_path
from curate_captioner.config import TrainConfig
from curate_captioner.data import compute_features, draw_examples, preprocessed_pixels
from curate_captioner.errors import CaptionerError, RefusedFile
from curate_captioner.model import Captioner

if TYPE_CHECKING:
    from curate.images import ImageFolders

CHECKPOINT_DIR = "checkpoint"
TRAINER_STATE = "trainer_state.pt"
LOG_FILE = "train_log.jsonl"
BUCKET_WINDOW = 16


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def use_bf16(precision: str, device: torch.device) -> bool:
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def learning_rate(step: int, config: TrainConfig, peak: float | None = None) -> float:
    """Linear warmup, then cosine decay to ``min_lr_ratio`` of the peak (``config.lr`` by default).

    Not transformers' ``get_cosine_with_min_lr_schedule_with_warmup``: after warmup its values are
    bit-for-bit these, but its warmup is ``step / warmup`` (0 at step 0) where ours is
    ``(step + 1) / warmup``, so every warmup step's rate differs (transformers 5.25, measured over
    1000/100 and 2000/50 step schedules; tests/captioner/test_train.py) and the trained
    checkpoints would change."""
    peak = config.lr if peak is None else peak
    if step < config.warmup:
        return peak * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return peak * (config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def batches(table: pl.DataFrame, config: TrainConfig, start_step: int):  # type: ignore[no-untyped-def]
    """(step, examples) for steps start_step… ; epochs are drawn from (seed, epoch).

    Examples of similar prompt and target length are batched together (within windows of
    ``BUCKET_WINDOW`` batches, whose order is then shuffled): a batch is padded to its longest
    prompt and target, and random batches waste about 40% of the decoder's work on padding.
    """
    step, epoch = 0, 0
    size = config.batch_size
    while True:
        rng = np.random.default_rng([config.seed, epoch])
        examples = draw_examples(table, config.stage, rng, config.empty_prompt_rate)
        if not examples:
            raise CaptionerError(f"no stage {config.stage} training examples in the table",
                                 "stage 1 needs non-empty alt_text; stage 2 needs a caption column")
        order = rng.permutation(len(examples)).tolist()
        epoch_batches = []
        for begin in range(0, len(order), size * BUCKET_WINDOW):
            window = sorted(order[begin : begin + size * BUCKET_WINDOW],
                            key=lambda i: (len(examples[i].prompt), len(examples[i].target)))
            epoch_batches += [window[k : k + size] for k in range(0, len(window), size)]
        epoch_batches = [b for b in epoch_batches if len(b) == size] or epoch_batches[:1]
        for index in rng.permutation(len(epoch_batches)).tolist():
            if step >= config.steps:
                return
            if step >= start_step:
                yield step, [examples[i] for i in epoch_batches[index]]
            step += 1
        epoch += 1


def train(
    captioner: Captioner,
    table: pl.DataFrame,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = True,
    log: Callable[[str], None] = print,
    facts: dict[str, Any] | None = None,
    feature_cache: str | Path | None = None,
    within: ImageFolders | None = None,
    store_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train ``captioner`` on ``table`` (columns: image, alt_text[, group][, caption]) and save it
    to ``out_dir``. Resumes from ``out_dir/checkpoint`` when there is one and ``resume``. Image
    references (``{shard, key}``) are read from ``store_dir`` (the run's store), and images only
    ``within`` those folders when given (an untrusted spec's: :func:`curate_captioner.data.open_images`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(config.device)
    bf16 = use_bf16(config.precision, device)
    torch.manual_seed(config.seed)

    checkpoint = out / CHECKPOINT_DIR
    start_step, state = 0, None
    if resume and (checkpoint / TRAINER_STATE).exists():
        state = load_trainer_state(checkpoint / TRAINER_STATE)
        captioner = Captioner.load(checkpoint)
        start_step = int(state["step"])
        log(f"resuming stage {config.stage} from step {start_step} ({checkpoint})")
    captioner.to(device)

    started = time.perf_counter()
    pixels = pooled = tokens = None
    if config.train_encoder:
        log(f"stage {config.stage}: decoding {table.height} images; the encoder trains too (lr {encoder_peak(config)})")
        pixels = preprocessed_pixels(table["image"].to_list(), captioner.encoder_config, within=within,
                                     store_dir=store_dir)
        log(f"pixels ready in {time.perf_counter() - started:.1f}s: {tuple(pixels.shape)}")
    else:
        log(f"stage {config.stage}: encoding {table.height} images with the frozen encoder on {device}")
        pooled, tokens = cached_features(captioner, table["image"].to_list(), feature_cache, within=within,
                                         store_dir=store_dir)
        log(f"features ready in {time.perf_counter() - started:.1f}s: pooled {tuple(pooled.shape)}"
            + (f", tokens {tuple(tokens.shape)}" if tokens is not None else ""))

    captioner.encoder.requires_grad_(config.train_encoder)
    groups = []
    for part, peak in ((captioner.mapper, config.lr), (captioner.decoder, config.lr),
                       *([(captioner.encoder, encoder_peak(config))] if config.train_encoder else [])):
        trainable = [p for p in part.parameters() if p.requires_grad]
        groups += [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": config.weight_decay, "peak": peak},
                   {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0, "peak": peak}]
    parameters = [p for group in groups for p in group["params"]]  # disjoint modules: each once
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98))
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    captioner.train()
    captioner.encoder.train(config.train_encoder)

    log_path = out / LOG_FILE
    window: list[float] = []
    seen = 0
    last_log = time.perf_counter()
    loss_value = float("nan")
    step = start_step
    for step, examples in batches(table, config, start_step):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config, group["peak"])
        index = torch.tensor([e.image for e in examples])
        batch = captioner.batch([e.prompt for e in examples], [e.target for e in examples])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            if pixels is not None:
                step_pooled, step_tokens = captioner.encode_pixels(pixels[index].to(device, dtype=torch.float32))
            else:
                assert pooled is not None
                step_pooled, step_tokens = pooled[index], None if tokens is None else tokens[index].float()
            if config.image_dropout > 0:
                step_pooled, step_tokens = drop_images(step_pooled, step_tokens, config.image_dropout, [config.seed, step])
            loss = captioner.loss(step_pooled, step_tokens, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        optimizer.step()
        loss_value = float(loss.detach())
        window.append(loss_value)
        seen += len(examples)
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            now = time.perf_counter()
            record = {"stage": config.stage, "step": done, "loss": round(sum(window) / len(window), 4),
                      "lr": round(learning_rate(step, config), 6), "examples_per_s": round(seen / (now - last_log), 1),
                      "seconds": round(now - started, 1)}
            log(json.dumps(record))
            with open(log_path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            window, seen, last_log = [], 0, now
        if done % config.checkpoint_every == 0 and done < config.steps:
            save_checkpoint(captioner, optimizer, done, checkpoint)
    seconds = round(time.perf_counter() - started, 1)
    summary = {
        "stage": config.stage, "steps": config.steps, "final_loss": round(loss_value, 4), "seconds": seconds,
        "examples": table.height, "config": config.model_dump(mode="json"), **(facts or {}),
    }
    history = list(captioner.training_facts.get("stages", []))
    history = [h for h in history if h.get("stage") != config.stage] + [summary]
    captioner.eval()
    captioner.encoder.requires_grad_(False)
    captioner.to("cpu").save(out, training={**captioner.training_facts, "stages": history})
    shutil.rmtree(checkpoint, ignore_errors=True)
    log(f"stage {config.stage} done in {seconds}s; captioner saved to {out}")
    return summary


def drop_images(pooled: torch.Tensor, tokens: torch.Tensor | None, rate: float,
                key: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Zero the features of a seeded ``rate`` share of rows: 'no image' (guidance.null_features)."""
    keep = torch.as_tensor(np.random.default_rng([*key, 0xD50]).random(pooled.shape[0]) >= rate, device=pooled.device)
    pooled = pooled * keep.view(-1, 1).to(pooled.dtype)
    if tokens is not None:
        tokens = tokens * keep.view(-1, 1, 1).to(tokens.dtype)
    return pooled, tokens


def encoder_peak(config: TrainConfig) -> float:
    return config.lr if config.encoder_lr is None else config.encoder_lr


def cached_features(captioner: Captioner, images: list[Any], cache: str | Path | None, *,
                    within: ImageFolders | None = None,
                    store_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encoder features of ``images``, reused from ``cache`` (a directory) when the same encoder
    already encoded the same images: stage 2 reuses what stage 1 computed for its images.
    ``store_dir``: the store image references are read from; ``within``: the only folders they
    are read from (:func:`curate_captioner.data.open_images`)."""
    import hashlib

    if cache is None:
        return compute_features(captioner, images, within=within, store_dir=store_dir)
    named = [str(i) for i in images]
    if store_dir is not None:  # one relative {shard, key} names another image in another store
        named.append(f"store_dir={store_dir}")
    digest = hashlib.sha256()
    digest.update(json.dumps([captioner.encoder_config, captioner.with_tokens, captioner.config.max_patch_tokens,
                              named], sort_keys=True).encode())
    for tensor in captioner.encoder.state_dict().values():
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    path = Path(cache) / f"features-{digest.hexdigest()[:16]}.pt"
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return saved["pooled"], saved.get("tokens")
    pooled, tokens = compute_features(captioner, images, within=within, store_dir=store_dir)
    with atomic_path(path) as partial:
        torch.save({"pooled": pooled, **({"tokens": tokens} if tokens is not None else {})}, partial)
    return pooled, tokens


def load_trainer_state(path: Path) -> dict[str, Any]:
    """The step and optimizer state of a checkpoint, read with ``weights_only=True``: tensors,
    numbers, strings and containers only. A file that would need unpickling arbitrary objects
    is refused without running anything in it (a checkpoint folder can be written by anyone)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or EOFError
        raise RefusedFile(
            f"cannot resume from {path}: it is not a trainer state this program wrote "
            f"(only tensors, numbers and containers are read; refused: {type(error).__name__})",
            f"delete {path.parent} to start the stage afresh, or pass --no-resume",
        ) from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int) or not isinstance(state.get("optimizer"), dict):
        raise RefusedFile(f"cannot resume from {path}: it has no step and optimizer state",
                             f"delete {path.parent} to start the stage afresh, or pass --no-resume")
    return state


def save_checkpoint(captioner: Captioner, optimizer: torch.optim.Optimizer, step: int, checkpoint: Path) -> None:
    """Write the checkpoint beside the old one and swap, so a crash never leaves half of one."""
    partial = checkpoint.with_name(f".{checkpoint.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    device = captioner.device
    captioner.to("cpu").save(partial)
    captioner.to(device)
    torch.save({"step": step, "optimizer": optimizer.state_dict()}, partial / TRAINER_STATE)
    shutil.rmtree(checkpoint, ignore_errors=True)
    partial.rename(checkpoint)
