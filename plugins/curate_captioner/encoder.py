"""The frozen image encoder: any open_clip vision tower, rebuilt from its config dict.

The captioner stores the tower's config (``embed_dim``, ``vision_cfg``, ``quick_gelu``) and its
preprocessing in ``captioner.json`` and its weights in the captioner's safetensors file, so a saved
captioner needs neither the full CLIP checkpoint nor a network. Preprocessing is done here with
Pillow and numpy (resize the short side, center crop, normalize), the same in training and
inference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curate_captioner.errors import CaptionerError

if TYPE_CHECKING:
    import torch
    from PIL import Image as PILImage

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def encoder_config(model_cfg: dict[str, Any], *, source: str, mean: Sequence[float] = OPENAI_MEAN,
                   std: Sequence[float] = OPENAI_STD) -> dict[str, Any]:
    """What a captioner records about its encoder: enough to rebuild the tower and its inputs."""
    vision = dict(model_cfg["vision_cfg"])
    image_size = vision.get("image_size", 224)
    return {
        "embed_dim": int(model_cfg["embed_dim"]),
        "vision_cfg": vision,
        "quick_gelu": bool(model_cfg.get("quick_gelu", False)),
        "image_size": int(image_size if isinstance(image_size, int) else image_size[0]),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "source": source,
    }


def build_tower(config: dict[str, Any]) -> torch.nn.Module:
    """A randomly initialised tower of ``config``; weights are loaded by the caller."""
    from open_clip.model import _build_vision_tower

    tower = _build_vision_tower(config["embed_dim"], dict(config["vision_cfg"]), quick_gelu=config["quick_gelu"])
    tower.requires_grad_(False)
    return tower.eval()


def tower_width(tower: torch.nn.Module) -> int | None:
    """Width of the tower's patch tokens, or None when it cannot return them (ResNet, timm)."""
    from open_clip.transformer import VisionTransformer

    if isinstance(tower, VisionTransformer):
        return int(tower.conv1.out_channels)
    return None


def from_open_clip(model: str | dict[str, Any] | Path, checkpoint: str | Path | None = None,
                   *, source: str | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The vision tower of an open_clip model: ``model`` is a built-in config name (``ViT-B-32``),
    a config dict, or a JSON config file; ``checkpoint`` a *local* CLIP state dict (.pt/.bin or
    .safetensors) whose ``visual.*`` weights are loaded. Without a checkpoint the tower is random,
    which is only useful for tests."""
    import open_clip

    if isinstance(model, dict):
        model_cfg, name = model, source or "custom open_clip config"
    elif Path(str(model)).suffix == ".json" and Path(str(model)).exists():
        model_cfg, name = json.loads(Path(model).read_text()), str(model)
    else:
        model_cfg = open_clip.get_model_config(str(model))
        if model_cfg is None:
            raise CaptionerError(f"'{model}' is not an open_clip model config",
                                 "use a name from open_clip.list_models(), a config dict or a JSON file")
        name = str(model)
    preprocess = model_cfg.get("preprocess_cfg", {})
    config = encoder_config(model_cfg, source=source or name, mean=preprocess.get("mean", OPENAI_MEAN),
                            std=preprocess.get("std", OPENAI_STD))
    tower = build_tower(config)
    if checkpoint is not None:
        state = _read_state_dict(Path(checkpoint))
        visual = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
        missing, unexpected = tower.load_state_dict(visual or state, strict=False)
        if missing:
            raise CaptionerError(f"{checkpoint} lacks vision tower weights {missing[:3]}…",
                                 "pass the checkpoint of the same open_clip config")
    return tower, config


def resize_tower(tower: torch.nn.Module, config: dict[str, Any], image_size: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The same ViT tower run at ``image_size``: same weights, its position embeddings
    interpolated to the new patch grid by open_clip (``resize_pos_embed``), so a 64 px tower at
    128 px gives four times the patch tokens, each seeing half the pixels per side."""
    from types import SimpleNamespace

    from open_clip.model import resize_pos_embed

    if tower_width(tower) is None:
        raise CaptionerError("only a ViT tower can change its input size", "train at the tower's own image_size")
    patch = config["vision_cfg"].get("patch_size", 16)
    if image_size % patch:
        raise CaptionerError(f"image size {image_size} is not a multiple of the tower's patch size {patch}",
                             f"use a multiple of {patch}")
    if image_size == config["image_size"]:
        return tower, config
    resized = {**config, "image_size": image_size, "vision_cfg": {**config["vision_cfg"], "image_size": image_size}}
    new_tower = build_tower(resized)
    state = {f"visual.{key}": value for key, value in tower.state_dict().items()}
    resize_pos_embed(state, SimpleNamespace(visual=new_tower))
    new_tower.load_state_dict({key[len("visual."):]: value for key, value in state.items()})
    return new_tower, resized


def _read_state_dict(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CaptionerError(f"CLIP checkpoint {path} does not exist", "curate never downloads weights; pass a local file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def preprocess(images: Sequence[PILImage.Image], config: dict[str, Any]) -> torch.Tensor:
    """(N, 3, S, S) float tensor: resize the short side to S (bicubic), center crop, normalize."""
    import numpy as np
    import torch
    from PIL import Image

    side = config["image_size"]
    mean = np.asarray(config["mean"], dtype=np.float32)
    std = np.asarray(config["std"], dtype=np.float32)
    batch = np.empty((len(images), side, side, 3), dtype=np.float32)
    for index, image in enumerate(images):
        image = image.convert("RGB")
        width, height = image.size
        scale = side / min(width, height)
        if (width, height) != (side, side):
            resized = (max(side, round(width * scale)), max(side, round(height * scale)))
            image = image.resize(resized, Image.Resampling.BICUBIC)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            image = image.crop((left, top, left + side, top + side))
        batch[index] = np.asarray(image, dtype=np.float32) / 255.0
    batch = (batch - mean) / std
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()


def encode(tower: torch.nn.Module, pixels: torch.Tensor, with_tokens: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(pooled (N, embed_dim), patch tokens (N, T, width) or None)."""
    if with_tokens:
        if tower_width(tower) is None:
            raise CaptionerError("features 'pooled+tokens' needs a ViT tower", "use features: pooled with this encoder")
        previous = tower.output_tokens
        tower.output_tokens = True
        try:
            pooled, tokens = tower(pixels)
        finally:
            tower.output_tokens = previous
        return pooled, tokens
    out = tower(pixels)
    return (out[0] if isinstance(out, tuple) else out), None
