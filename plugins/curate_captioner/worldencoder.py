"""Teach the world CLIP's vision tower to see every object before a captioner freezes it.

The world CLIP was trained to match scenes to texts; with 16 patch tokens it tells colours apart
but barely shapes (a shape probe on its tokens: ~33 %), and a captioner trained on top inherits
that (EVAL.md). Captioning loss alone teaches the tower slowly: a shape word is one token of
thirty. So, before the captioner, the tower is tuned on the world's own labels, the way real
captioners start from a supervised or contrastive encoder: for each of the nine grid positions a
learned query attends over the patch tokens and heads predict the object there (shape, colour,
size, logo entity, or none). The heads are thrown away; what comes out is an ordinary open_clip
checkpoint (``visual.*`` weights and the model config), used with
``curate captioner train --encoder CONFIG --encoder-checkpoint WEIGHTS``.

Validation accuracies (per object, on the world's held-out ``val`` scenes) are recorded beside it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import torch
from torch import nn

from curate_captioner.encoder import encode, resize_tower
from curate_captioner.errors import CaptionerError

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "visual.safetensors"
RECORD_FILE = "tune.json"


def label_spaces() -> dict[str, tuple[str, ...]]:
    """What is predicted at each grid position; the last class of each is 'nothing there'."""
    from curate_world.api import COLORS, ENTITIES, SHAPES, SIZES

    return {"shape": tuple(SHAPES), "color": tuple(COLORS), "size": tuple(SIZES),
            "entity": tuple(e.name for e in ENTITIES)}


def scene_labels(objects_json: list[str], backgrounds: list[str], textures: list[str]) -> dict[str, torch.Tensor]:
    """(rows, 9) class indices per attribute; a position without an object gets the 'none' class
    of every attribute, an object that is no logo gets the 'none' entity."""
    from curate_world.api import POSITIONS, Scene

    spaces, positions = label_spaces(), list(POSITIONS)
    labels = {name: torch.full((len(objects_json), len(positions)), len(values), dtype=torch.long)
              for name, values in spaces.items()}
    for row, (objects, background, texture) in enumerate(zip(objects_json, backgrounds, textures, strict=True)):
        for obj in Scene.from_objects_json(objects, background, texture).objects:
            where = positions.index(obj.position)
            for name, values in spaces.items():
                value = getattr(obj, name)
                if value is not None:
                    labels[name][row, where] = values.index(value)
    return labels


class PositionProbe(nn.Module):
    """Nine learned queries (one per grid position) attend over the patch tokens; a linear head
    per attribute reads each query's output."""

    def __init__(self, width: int, spaces: dict[str, tuple[str, ...]], positions: int = 9, heads: int = 4):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(positions, width) * 0.02)
        self.attend = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.heads = nn.ModuleDict({name: nn.Linear(width, len(values) + 1) for name, values in spaces.items()})

    def forward(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        queries = self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        mixed = self.norm(self.attend(queries, tokens, tokens, need_weights=False)[0])
        return {name: head(mixed) for name, head in self.heads.items()}


def _world_split(world_dir: Path, split: str) -> pl.DataFrame:
    from curate_captioner.data import read_world

    table = read_world(world_dir).filter(pl.col("split") == split)
    if table.height == 0:
        raise CaptionerError(f"world {world_dir} has no '{split}' rows", "generate a world with a val split")
    # Training keeps every row (a scene's re-uploads are jittered, rescaled copies: free
    # augmentation); validation scores each held-out scene once.
    return table if split == "train" else table.unique("scene_id", keep="first", maintain_order=True)


def training_rows(world_dir: Path, val_rows: pl.DataFrame) -> pl.DataFrame:
    """``world_dir``'s train rows, less any whose scene shows exactly what a validation scene shows
    (possible when the validation scenes come from another world)."""
    from curate_captioner.data import scene_content

    rows = _world_split(world_dir, "train")
    return rows.filter(~scene_content(rows).is_in(scene_content(val_rows).implode()))


def tune_world_encoder(world_dir: str | Path, out_dir: str | Path, *, steps: int = 4000, batch_size: int = 64,
                       lr: float = 1e-3, warmup: int = 100, image_size: int | None = None, seed: int = 0,
                       flip: bool = True, val_world: str | Path | None = None,
                       log: Callable[[str], None] = print, command: str | None = None) -> dict[str, Any]:
    """Tune the world CLIP's tower on ``world_dir``'s train scenes and write an open_clip
    checkpoint to ``out_dir``; returns the record (also written as ``tune.json``).

    Accuracy is measured on the val scenes of ``val_world`` (default: ``world_dir``), none of
    which is trained on: with another world (say, the captioner's), train rows showing the same
    scene as one of its val scenes are left out."""
    from safetensors.torch import save_file

    from curate_captioner.data import preprocessed_pixels
    from curate_captioner.worldclip import SOURCE, world_clip_files, world_clip_tower

    root, out = Path(world_dir), Path(out_dir)
    val_root = Path(val_world) if val_world is not None else root
    val_rows = _world_split(val_root, "val")
    train_rows = training_rows(root, val_rows)
    torch.manual_seed(seed)
    tower, config = world_clip_tower()
    if image_size is not None:
        tower, config = resize_tower(tower, config, image_size)
    spaces = label_spaces()

    def load(where: Path, rows: pl.DataFrame) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pixels = preprocessed_pixels([str(where / p) for p in rows["image_path"]], config)
        return pixels, scene_labels(rows["objects"].to_list(), rows["background"].to_list(), rows["texture"].to_list())

    started = time.perf_counter()
    train_pixels, train_labels = load(root, train_rows)
    val_pixels, val_labels = load(val_root, val_rows)
    log(f"{len(train_pixels)} train and {len(val_pixels)} val scenes decoded in {time.perf_counter() - started:.1f}s")

    probe = PositionProbe(int(tower.conv1.out_channels), spaces)
    tower.requires_grad_(True).train()
    parameters = [*tower.parameters(), *probe.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    generator = torch.Generator().manual_seed(seed)

    def predict(pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        return probe(encode(tower, pixels.float(), True)[1])

    def rate(step: int) -> float:  # (step + 1) / warmup: not transformers' schedule (see train.learning_rate)
        if step < warmup:
            return lr * (step + 1) / warmup
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    history = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = rate(step)
        index = torch.randint(0, len(train_pixels), (batch_size,), generator=generator)
        pixels, labels = train_pixels[index], {name: values[index] for name, values in train_labels.items()}
        if flip:
            pixels, labels = mirror_half(pixels, labels, generator)
        outputs = predict(pixels)
        loss = sum(nn.functional.cross_entropy(outputs[name].flatten(0, 1), labels[name].flatten()) for name in spaces)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        if (step + 1) % max(1, steps // 8) == 0 or step + 1 == steps:
            accuracy = validate(predict, val_pixels, val_labels)
            history.append({"step": step + 1, "loss": round(float(loss.detach()), 4), **accuracy,
                            "seconds": round(time.perf_counter() - started, 1)})
            log(json.dumps(history[-1]))
    tower.requires_grad_(False).eval()

    out.mkdir(parents=True, exist_ok=True)
    model_config, _ = world_clip_files()
    model_config = {**model_config, "vision_cfg": dict(config["vision_cfg"])}
    (out / CONFIG_FILE).write_text(json.dumps(model_config, indent=2) + "\n")
    save_file({f"visual.{k}": v.contiguous() for k, v in tower.state_dict().items()}, str(out / WEIGHTS_FILE))
    record = {"source": f"{SOURCE}, tuned on world object labels", "world": str(root), "val_world": str(val_root),
              "train_rows": train_rows.height, "steps": steps,
              "batch_size": batch_size, "lr": lr, "image_size": config["image_size"], "seed": seed, "flip": flip,
              "val": history[-1] if history else {}, "history": history, "command": command,
              "seconds": round(time.perf_counter() - started, 1)}
    (out / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def mirror_half(pixels: torch.Tensor, labels: dict[str, torch.Tensor],
                generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mirror a random half of the batch left to right, moving each label to the mirrored grid
    position. Every world shape is symmetric about its vertical axis, so only positions change."""
    from curate_world.api import POSITIONS

    names = list(POSITIONS)
    mirrored = {"left": "right", "right": "left"}
    swap = [names.index(" ".join(mirrored.get(word, word) for word in name.split())) for name in names]
    chosen = torch.rand(len(pixels), generator=generator) < 0.5
    pixels = torch.where(chosen[:, None, None, None], pixels.flip(-1), pixels)
    labels = {name: torch.where(chosen[:, None], values[:, swap], values) for name, values in labels.items()}
    return pixels, labels


def validate(predict: Callable[[torch.Tensor], dict[str, torch.Tensor]], pixels: torch.Tensor,
             labels: dict[str, torch.Tensor], batch_size: int = 512) -> dict[str, float]:
    """Per-object accuracy of each attribute (positions with an object only), and the share of
    scenes whose every position is right on every attribute."""
    with torch.no_grad():
        outputs: dict[str, list[torch.Tensor]] = {name: [] for name in labels}
        for start in range(0, len(pixels), batch_size):
            for name, value in predict(pixels[start : start + batch_size]).items():
                outputs[name].append(value.argmax(-1))
    predicted = {name: torch.cat(parts) for name, parts in outputs.items()}
    spaces = label_spaces()
    occupied = labels["shape"] < len(spaces["shape"])
    result = {f"{name}_accuracy": round(float((predicted[name][occupied] == truth[occupied]).float().mean()), 4)
              for name, truth in labels.items()}
    every = torch.ones(len(pixels), dtype=torch.bool)
    for name, truth in labels.items():
        every &= (predicted[name] == truth).all(dim=1)
    result["scene_accuracy"] = round(float(every.float().mean()), 4)
    return result
