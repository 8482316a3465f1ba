"""Loading CLIP models, only through ``open_clip.create_model_and_transforms``, and only offline.

A model is named by an open_clip architecture plus where its weights come from:
  - ``checkpoint: path/to/weights.safetensors`` (or a ``.pt``/``.bin`` state dict, loaded with
    ``weights_only=True``) — what this machine can do;
  - ``pretrained: <tag>`` or ``model: hf-hub:org/name`` — these download from a hub, so they are
    refused at plan time here with a message that says how to point at a local file instead.
The default is the world CLIP this project trains and ships (``weights/world-clip-tiny.safetensors``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate_clip.checkpoints import ModelFileError, check_architecture_and_weights

PACKAGE_DIR = Path(__file__).parent
CONFIG_DIR = PACKAGE_DIR / "configs"
WORLD_MODEL = "world-clip-tiny"
WORLD_CHECKPOINT = PACKAGE_DIR / "weights" / f"{WORLD_MODEL}.safetensors"
HUB_PREFIXES = ("hf-hub:", "hf_hub:", "hub:", "http://", "https://")


def offline() -> bool:
    """Hubs are out of reach here; a user on a connected machine may say otherwise explicitly."""
    return os.environ.get("CURATE_ALLOW_HUB", "") not in ("1", "true", "yes")


def check_model(model: str, pretrained: str | None, checkpoint: str | None) -> list[str]:
    """Plan-time problems with a model choice (nothing is loaded or imported)."""
    problems = []
    if model.startswith(HUB_PREFIXES) and offline():
        problems.append(
            f"model '{model}' would be downloaded from a hub, and this machine is offline: "
            "set `model:` to an open_clip architecture name and `checkpoint:` to a local weights file "
            "(or CURATE_ALLOW_HUB=1 on a machine that can reach the hub)"
        )
    if pretrained and not checkpoint and offline():
        problems.append(
            f"pretrained tag '{pretrained}' for '{model}' would be downloaded, and this machine is offline: "
            "download the weights elsewhere and set `checkpoint: /path/to/weights.safetensors` instead"
        )
    if checkpoint and not Path(checkpoint).expanduser().exists():
        problems.append(f"checkpoint {checkpoint} does not exist")
    if model == WORLD_MODEL and not checkpoint and not WORLD_CHECKPOINT.exists():
        problems.append(f"the world CLIP's weights are missing ({WORLD_CHECKPOINT}); reinstall curate[clip]")
    if not problems and not model.startswith(HUB_PREFIXES):
        weights = Path(checkpoint).expanduser() if checkpoint else (WORLD_CHECKPOINT if model == WORLD_MODEL else None)
        problems += check_architecture_and_weights(model, weights)
    return problems


def register_configs() -> None:
    import open_clip

    if WORLD_MODEL not in open_clip.list_models():
        open_clip.add_model_config(str(CONFIG_DIR))


@dataclass
class LoadedClip:
    model: Any
    preprocess: Any
    tokenizer: Any
    device: str
    name: str

    def model_id(self) -> str:
        return self.name


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CurateError(f"device '{device}' was asked for but torch sees no CUDA device",
                          "use device: auto or cpu")
    return device


def load_state_dict(path: Path) -> dict[str, Any]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return {k.removeprefix("module."): v for k, v in state.items()}


def has_logit_bias(path: Path) -> bool:
    """Whether a checkpoint holds a SigLIP ``logit_bias`` (read without loading the tensors where
    the format allows)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return "logit_bias" in handle.keys()
    return any(key.removeprefix("module.") == "logit_bias" for key in load_state_dict(path))


def load_clip(model: str = WORLD_MODEL, pretrained: str | None = None, checkpoint: str | None = None,
              device: str = "auto") -> LoadedClip:
    problems = check_model(model, pretrained, checkpoint)
    if problems:
        raise ModelFileError("; ".join(problems))
    import open_clip
    import torch

    register_configs()
    device = resolve_device(device)
    weights = Path(checkpoint).expanduser() if checkpoint else (WORLD_CHECKPOINT if model == WORLD_MODEL else None)
    import logging

    # Without weights (benchmarks of an architecture) open_clip warns that it initialized randomly:
    # that is what was asked for, so keep its log quiet then.
    root = logging.getLogger()
    level = root.level
    if weights is None and pretrained is None:
        root.setLevel(logging.ERROR)
    extra: dict[str, Any] = {}
    if weights is not None and has_logit_bias(weights):
        # A --siglip checkpoint carries the bias its loss learned; a CLIP config has no slot for
        # it. Give the model one so the weights load (the score is the cosine either way).
        extra["init_logit_bias"] = 0.0
    try:
        # A local file as ``pretrained``: open_clip reads .safetensors with safetensors and anything
        # else with torch.load(weights_only=True), and strips open_clip_train's "module." prefix.
        clip, _, preprocess = open_clip.create_model_and_transforms(
            model, pretrained=str(weights) if weights is not None else pretrained, device="cpu",
            weights_only=True, **extra,
        )
    except (RuntimeError, ValueError, OSError, KeyError) as error:
        # What the plan-time checks cannot see (a tensor whose bytes are corrupt, a tower built
        # elsewhere whose shapes are not checked). torch's own text would advise weights_only=False.
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "weights_only" in first:
            first = "the file holds objects other than tensors"
        raise ModelFileError(f"cannot load CLIP '{model}' from {weights or pretrained}: {first[:300]}",
                             "check that the checkpoint is the state dict of this architecture, as .safetensors") from None
    finally:
        root.setLevel(level)
    clip = clip.to(device).eval()
    name = model if model.startswith("local-dir:") and weights is None else \
        f"{model}@{weights.name if weights else pretrained or 'random'}"
    return LoadedClip(clip, preprocess, open_clip.get_tokenizer(model), device, name)


def export_safetensors(checkpoint: Path, out: Path) -> None:
    """An open_clip_train checkpoint → float16 safetensors of the state dict (what we ship)."""
    import torch
    from safetensors.torch import save_file

    state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)["state_dict"]
    state = {k.removeprefix("module."): v.detach().to(torch.float16).contiguous() for k, v in state.items()}
    # A --siglip run learns a logit bias for its loss; curate's score is the cosine, which does not
    # use it, and the world config has no such parameter to load it into.
    state.pop("logit_bias", None)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out))
    out.chmod(0o644)  # shipped as package data: readable by everyone
