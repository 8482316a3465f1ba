"""The third training stage: preference optimisation of a stage-2 (SFT) captioner on pair tables.

The SFT captioner is both the policy's starting point and the frozen reference. The encoder stays
frozen, so every image's features are computed once (as in stage 2), and the reference's
log-probability of each side of each pair is computed once before the first step: a step runs the
policy only, on the chosen and rejected sides of its pairs in one batch.

    loss: mcm_dpo   sum over dimensions of weight × the dimension's mean DPO loss (preference.py)
          dpo       the mean DPO loss over all pairs (dimensions ignored)
    length_normalize  each side's log-probability is its per-token mean, not its sum (preference.py)
    sft_weight      adds the chosen side's mean per-token NLL (RPO), which keeps the chosen captions
                    likely while the margin grows; 0 is plain DPO (default 1: plain DPO at a higher
                    lr raised wrong attributes on the world, see the README)

    out/                 the tuned captioner (a captioner directory; captioner.json records the stage)
    out/train_log.jsonl  loss, per-dimension loss, reward accuracy and margin, lr, throughput
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl
import torch
from pydantic import BaseModel, ConfigDict, Field

from curate_captioner.data import image_identity
from curate_captioner.errors import CaptionerError
from curate_captioner.model import Captioner
from curate_captioner.preference import DIMENSIONS, dpo_losses, mcm_dpo_loss, sequence_logps
from curate_captioner.train import LOG_FILE, cached_features, pick_device

if TYPE_CHECKING:
    from curate.images import ImageFolders


class PreferenceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loss: Literal["mcm_dpo", "dpo"] = "mcm_dpo"
    beta: float = Field(0.1, gt=0)
    weights: dict[str, float] = Field(default_factory=lambda: dict.fromkeys(DIMENSIONS, 1.0))
    length_normalize: bool = False
    sft_weight: float = Field(1.0, ge=0)  # 1: RPO, the least harmful measured (README)
    steps: int = Field(300, gt=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-5, gt=0)
    warmup: int = Field(20, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    seed: int = 0
    log_every: int = Field(25, gt=0)
    device: str = "auto"

    def model_post_init(self, context: Any) -> None:
        unknown = sorted(set(self.weights) - set(DIMENSIONS))
        if unknown:
            raise CaptionerError(f"unknown preference dimension(s) in weights: {unknown}", f"use {', '.join(DIMENSIONS)}")


def cosine_lr(step: int, config: PreferenceConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def sides(pairs: pl.DataFrame) -> dict[str, list[Any]]:
    """Each pair's two conditionings and captions (a null rejected image or alt-text is the chosen one's)."""
    images = pairs["image"].to_list()
    alts = pairs["alt_text"].to_list()
    return {
        "chosen_image": images, "chosen_prompt": alts, "chosen": pairs["chosen"].to_list(),
        "rejected_image": [r if r is not None else i for r, i in zip(pairs["rejected_image"].to_list(), images, strict=True)],
        "rejected_prompt": [r if r is not None else a for r, a in zip(pairs["rejected_alt_text"].to_list(), alts, strict=True)],
        "rejected": pairs["rejected"].to_list(), "dimension": pairs["dimension"].to_list(),
    }


def pair_logps(captioner: Captioner, rows: list[int], data: dict[str, list[Any]], pooled: torch.Tensor,
               tokens: torch.Tensor | None, where: dict[Any, int]
               ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Log-probabilities of the chosen and rejected sides of ``rows`` (one decoder call), and the
    two sides' target token counts. ``where``: each image's feature row, by its
    :func:`~curate_captioner.data.image_identity`."""
    index = [where[image_identity(data[f"{side}_image"][r])] for side in ("chosen", "rejected") for r in rows]
    prompts = [data["chosen_prompt"][r] for r in rows] + [data["rejected_prompt"][r] for r in rows]
    targets = [data["chosen"][r] for r in rows] + [data["rejected"][r] for r in rows]
    batch = captioner.batch(prompts, targets)
    picked = torch.tensor(index)
    logps = sequence_logps(captioner, pooled[picked], None if tokens is None else tokens[picked].float(), batch)
    assert batch.labels is not None
    lengths = (batch.labels != -100).sum(dim=1).to(logps.device)
    return logps[: len(rows)], logps[len(rows):], (lengths[: len(rows)], lengths[len(rows):])


def side_keys(data: dict[str, list[Any]], side: str) -> list[str]:
    import hashlib

    return [hashlib.sha1(f"{i}\0{p}\0{c}".encode()).hexdigest() for i, p, c in
            zip(data[f"{side}_image"], data[f"{side}_prompt"], data[side], strict=True)]


def reference_logps(reference: Captioner, data: dict[str, list[Any]], pooled: torch.Tensor, tokens: torch.Tensor | None,
                    where: dict[Any, int], batch_size: int, cache: str | Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen reference's log-probability of every pair's two sides, computed once; with
    ``cache`` (a directory) kept per (reference weights, image, alt-text, caption) for later runs
    on the same or overlapping pairs (an ablation over dimensions)."""
    keys = {side: side_keys(data, side) for side in ("chosen", "rejected")}
    path = None if cache is None else Path(cache) / f"reference-{reference.name.replace('@', '-')}.parquet"
    known: dict[str, float] = {}
    if path is not None and path.exists():
        saved = pl.read_parquet(path)
        known = dict(zip(saved["key"].to_list(), saved["logp"].to_list(), strict=True))
    missing = [r for r in range(len(data["chosen"])) if keys["chosen"][r] not in known or keys["rejected"][r] not in known]
    with torch.no_grad():
        for begin in range(0, len(missing), batch_size):
            rows = missing[begin : begin + batch_size]
            chosen, rejected, _ = pair_logps(reference, rows, data, pooled, tokens, where)
            for r, c, j in zip(rows, chosen.tolist(), rejected.tolist(), strict=True):
                known[keys["chosen"][r]], known[keys["rejected"][r]] = c, j
    if path is not None and missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"key": list(known), "logp": list(known.values())}).write_parquet(path)
    return (torch.tensor([known[k] for k in keys["chosen"]]), torch.tensor([known[k] for k in keys["rejected"]]))


def train_preference(policy: Captioner, pairs: pl.DataFrame, config: PreferenceConfig, out_dir: str | Path, *,
                     log: Callable[[str], None] = print, facts: dict[str, Any] | None = None,
                     feature_cache: str | Path | None = None, within: ImageFolders | None = None,
                     store_dir: str | Path | None = None) -> dict[str, Any]:
    """Tune ``policy`` (a stage-2 captioner, also the frozen reference) on ``pairs`` and save it.
    Its images are paths or references ``{shard, key}`` into ``store_dir`` (the run's store);
    ``within``: the only folders they are read from (:func:`curate_captioner.data.open_images`)."""
    if pairs.height == 0:
        raise CaptionerError("the pair table has no rows", "make pairs with `curate captioner pairs`")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    policy.to(device).eval()
    started = time.perf_counter()
    data = sides(pairs)
    distinct: dict[Any, Any] = {}  # each image once, in order of first use
    for image in data["chosen_image"] + data["rejected_image"]:
        distinct.setdefault(image_identity(image), image)
    images = list(distinct.values())
    where = {identity: i for i, identity in enumerate(distinct)}
    pooled, tokens = cached_features(policy, images, feature_cache, within=within, store_dir=store_dir)
    log(f"preference: {pairs.height} pairs, {len(images)} images encoded in {time.perf_counter() - started:.1f}s")

    reference_chosen, reference_rejected = reference_logps(policy, data, pooled, tokens, where, 4 * config.batch_size,
                                                           feature_cache)
    log(f"reference log-probabilities ready in {time.perf_counter() - started:.1f}s")

    parameters = [p for part in (policy.mapper, policy.decoder) for p in part.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay)
    policy.train()
    policy.encoder.eval()
    log_path = out / LOG_FILE
    window: dict[str, list[float]] = {}
    seen, last = 0, time.perf_counter()
    order: list[int] = []
    epoch = 0
    for step in range(config.steps):
        if len(order) < config.batch_size:
            order += np.random.default_rng([config.seed, epoch]).permutation(pairs.height).tolist()
            epoch += 1
        rows, order = order[: config.batch_size], order[config.batch_size :]
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, config)
        chosen, rejected, lengths = pair_logps(policy, rows, data, pooled, tokens, where)
        losses, reward_chosen, reward_rejected = dpo_losses(chosen, rejected, reference_chosen[rows].to(device),
                                                            reference_rejected[rows].to(device), config.beta,
                                                            lengths if config.length_normalize else None)
        dimensions = [data["dimension"][r] for r in rows]
        if config.loss == "mcm_dpo":
            loss, per_dimension = mcm_dpo_loss(losses, dimensions, config.weights)
        else:
            loss, per_dimension = losses.mean(), {}
        if config.sft_weight:
            loss = loss + config.sft_weight * (-chosen / lengths[0]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        optimizer.step()
        for name, value in {"loss": float(loss.detach()), "reward_accuracy": float((reward_chosen > reward_rejected).float().mean()),
                            "margin": float((reward_chosen - reward_rejected).mean()),
                            **{f"loss_{d}": v for d, v in per_dimension.items()}}.items():
            window.setdefault(name, []).append(value)
        seen += len(rows)
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            now = time.perf_counter()
            record = {"stage": "preference", "step": step + 1, **{k: round(sum(v) / len(v), 4) for k, v in window.items()},
                      "lr": round(cosine_lr(step, config), 8), "pairs_per_s": round(seen / (now - last), 1),
                      "seconds": round(now - started, 1)}
            log(json.dumps(record))
            with open(log_path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            window, seen, last = {}, 0, now
    seconds = round(time.perf_counter() - started, 1)
    counts = pairs.group_by("dimension").len().sort("dimension")
    summary = {"stage": "preference", "steps": config.steps, "seconds": seconds, "pairs": pairs.height,
               "pairs_by_dimension": dict(zip(counts["dimension"].to_list(), counts["len"].to_list(), strict=True)),
               "reference": policy.name, "config": config.model_dump(mode="json"), **(facts or {})}
    history = [h for h in policy.training_facts.get("stages", []) if h.get("stage") != "preference"] + [summary]
    policy.eval()
    policy.to("cpu").save(out, training={**policy.training_facts, "stages": history})
    log(f"preference stage done in {seconds}s; captioner saved to {out}")
    return summary
