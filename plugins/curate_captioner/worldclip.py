"""The world CLIP of ``curate_clip`` as the captioner's frozen encoder, and as the scorer of its
captions. Imported only when asked for: curate_clip is another plugin and may be absent."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from curate.errors import pip_install
from curate_captioner.errors import CaptionerError

SOURCE = "world-clip-tiny (curate_clip)"


def world_clip_files() -> tuple[dict[str, Any], Any]:
    try:
        from curate_clip.api import CONFIG_DIR, WORLD_CHECKPOINT, WORLD_MODEL
    except ImportError as exc:
        raise CaptionerError("the world CLIP needs the curate_clip plugin", pip_install("clip")) from exc
    if not WORLD_CHECKPOINT.exists():
        raise CaptionerError(f"the world CLIP's weights are missing ({WORLD_CHECKPOINT})",
                             "train or install them first (see curate_clip), or pass --encoder with a checkpoint")
    return json.loads((CONFIG_DIR / f"{WORLD_MODEL}.json").read_text()), WORLD_CHECKPOINT


def world_clip_tower() -> tuple[Any, dict[str, Any]]:
    """The world CLIP's vision tower with its weights, and its encoder config."""
    from curate_captioner.encoder import from_open_clip

    config, checkpoint = world_clip_files()
    return from_open_clip(config, checkpoint, source=SOURCE)


@cache
def _scorer() -> tuple[Any, Any, Any]:
    from curate_clip.api import load_clip

    _, checkpoint = world_clip_files()
    loaded = load_clip(checkpoint=str(checkpoint), device="cpu")  # what the clip_score step loads
    return loaded.model, loaded.preprocess, loaded.tokenizer


def world_clip_scores(images: list[Any], texts: list[str], batch_size: int = 128) -> list[float]:
    """Cosine similarity of each (image, text) pair under the world CLIP, as its clip_score step
    computes it (same preprocessing and tokenizer)."""
    import torch

    model, preprocess, tokenizer = _scorer()
    scores: list[float] = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            pixels = torch.stack([preprocess(image) for image in images[start : start + batch_size]])
            tokens = tokenizer([t or "" for t in texts[start : start + batch_size]])
            image_features = torch.nn.functional.normalize(model.encode_image(pixels).float(), dim=-1)
            text_features = torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1)
            scores.extend((image_features * text_features).sum(dim=-1).tolist())
    return scores
