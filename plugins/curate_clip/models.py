"""Loading CLIP models, only through ``open_clip.create_model_and_transforms``, and only offline.

A model is named by an open_clip architecture plus where its weights come from:
  - ``checkpoint: path/to/weights.safetensors`` (or a ``.pt``/``.bin`` state dict, loaded with
    ``weights_only=True``) — what this machine can do;
  - ``pretrained: <tag>`` or ``model: hf-hub:org/name`` — these download from a hub, so they are
    refused at plan time here with a message that says how to point at a local file instead;
  - ``model: local-dir:/folder`` — open_clip's folder of ``open_clip_config.json`` and weights, whose
    config is checked like the weights: nothing in it may make open_clip import code or download.
The default is the world CLIP this project trains and ships (``weights/world-clip-tiny.safetensors``).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate_clip.checkpoints import (
    LOCAL_DIR_PREFIX,
    TORCH_SUFFIXES,
    ModelFileError,
    architecture_config,
    check_architecture_and_weights,
    local_dir_weights,
    not_regular_file,
)

PACKAGE_DIR = Path(__file__).parent
CONFIG_DIR = PACKAGE_DIR / "configs"
WORLD_MODEL = "world-clip-tiny"
WORLD_CHECKPOINT = PACKAGE_DIR / "weights" / f"{WORLD_MODEL}.safetensors"
HUB_PREFIXES = ("hf-hub:", "hf_hub:", "hub:", "http://", "https://")


def offline() -> bool:
    """Hubs are out of reach here; a user on a connected machine may say otherwise explicitly."""
    return os.environ.get("CURATE_ALLOW_HUB", "") not in ("1", "true", "yes")


def looks_like_a_path(value: str) -> bool:
    """A ``pretrained:`` value that is a file rather than one of open_clip's tags (which name no path)."""
    return ("/" in value or "\\" in value or value.startswith("~")
            or value.endswith((".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".npz")) or Path(value).is_file())


def model_weights(model: str, checkpoint: str | None) -> Path | None:
    """The weights file a model choice loads (None: random weights, or a problem check_model names)."""
    if checkpoint:
        return Path(checkpoint).expanduser()
    if model.startswith(LOCAL_DIR_PREFIX):
        return local_dir_weights(model)[0]
    return WORLD_CHECKPOINT if model == WORLD_MODEL else None


def check_model(model: str, pretrained: str | None, checkpoint: str | None, untrusted: bool = False) -> list[str]:
    """Plan-time problems with a model choice (nothing is loaded or imported). ``untrusted``: the
    spec is someone else's, so its weights must be safetensors (a torch state dict is a pickle,
    read by torch's restricted unpickler, which has had code-execution holes)."""
    if untrusted and not model.startswith(HUB_PREFIXES):
        weights = model_weights(model, checkpoint)
        if weights is not None and weights.suffix in TORCH_SUFFIXES:
            return [f"checkpoint {weights} is a torch pickle ({weights.suffix}): an untrusted spec's weights must be "
                    ".safetensors, which hold tensors and nothing else to run; convert them (safetensors.torch."
                    "save_file) or review them and run the spec without --untrusted"]
    problems = []
    local = model.startswith(LOCAL_DIR_PREFIX)
    if model.startswith(HUB_PREFIXES) and offline():
        problems.append(
            f"model '{model}' would be downloaded from a hub, and this machine is offline: "
            "set `model:` to an open_clip architecture name and `checkpoint:` to a local weights file "
            "(or CURATE_ALLOW_HUB=1 on a machine that can reach the hub)"
        )
    if pretrained and looks_like_a_path(pretrained):
        problems.append(
            f"pretrained '{pretrained}' names a local file, and `pretrained:` is for open_clip's download tags "
            f"(openai, laion2b_s34b_b79k…): set `checkpoint: {pretrained}` for local weights"
        )
    elif pretrained and local:
        problems.append(f"pretrained tag '{pretrained}' is not used with model '{model}' (open_clip loads the "
                        "folder's own weights): remove `pretrained:`")
    elif pretrained and not checkpoint and offline():
        problems.append(
            f"pretrained tag '{pretrained}' for '{model}' would be downloaded, and this machine is offline: "
            "download the weights elsewhere and set `checkpoint: /path/to/weights.safetensors` instead"
        )
    if checkpoint and local:
        problems.append(f"checkpoint {checkpoint} would not be used with model '{model}': open_clip loads the "
                        "folder's own weights; save them there as open_clip_model.safetensors, or set `model:` "
                        "to the open_clip architecture the checkpoint was trained as")
    elif checkpoint and (why := not_regular_file(Path(checkpoint).expanduser())):
        problems.append(f"checkpoint {checkpoint} {why}: point `checkpoint:` at the weights file itself")
    if model == WORLD_MODEL and not checkpoint and not WORLD_CHECKPOINT.exists():
        problems.append(f"the world CLIP's weights are missing ({WORLD_CHECKPOINT}); reinstall curate[clip]")
    if local and not checkpoint:
        folder_problem = local_dir_weights(model)[1]
        config_problem = architecture_config(model, offline())[1]
        # the config's problem names the folder's own trouble first (a missing folder or config)
        problems += [p for p in (config_problem, folder_problem if config_problem is None or
                                 "open_clip_config.json" not in config_problem else None) if p]
        if not problems:
            problems += check_architecture_and_weights(model, model_weights(model, None), offline())
    elif not problems and not model.startswith(HUB_PREFIXES):
        problems += check_architecture_and_weights(model, model_weights(model, checkpoint), offline())
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
    local = model.startswith(LOCAL_DIR_PREFIX)
    weights = model_weights(model, checkpoint)
    if local and weights is None and not problems:  # a stand-in folder (weights_to_come) is not loadable
        problems = [f"model '{model}': the folder has no weights yet (a stand-in while validating): train or "
                    "save the model's weights there as open_clip_model.safetensors"]
    if problems:
        raise ModelFileError("; ".join(problems))
    import open_clip
    import torch

    register_configs()
    device = resolve_device(device)
    config = architecture_config(model, offline())[0] or {}
    import logging

    # Without weights (benchmarks of an architecture) open_clip warns that it initialized randomly:
    # that is what was asked for, so keep its log quiet then.
    root = logging.getLogger()
    level = root.level
    if weights is None and pretrained is None:
        root.setLevel(logging.ERROR)
    try:
        extra: dict[str, Any] = {}
        if weights is not None and has_logit_bias(weights):
            # A --siglip checkpoint carries the bias its loss learned; a CLIP config has no slot for
            # it. Give the model one so the weights load (the score is the cosine either way).
            extra["init_logit_bias"] = 0.0
        # A local file as ``pretrained``: open_clip reads .safetensors with safetensors and anything
        # else with torch.load(weights_only=True), and strips open_clip_train's "module." prefix.
        # A local-dir: model loads the folder's weights (the file model_weights names) itself.
        clip, _, preprocess = open_clip.create_model_and_transforms(
            model, pretrained=None if local else str(weights) if weights is not None else pretrained, device="cpu",
            weights_only=True, **extra,
        )
    except (RuntimeError, ValueError, OSError, KeyError, TypeError, AttributeError, AssertionError, IndexError,
            EOFError, pickle.UnpicklingError) as error:
        # What the plan-time checks cannot see (a tensor whose bytes are corrupt, a tower built
        # elsewhere whose shapes are not checked). torch's own text would advise weights_only=False.
        raise ModelFileError(f"cannot load CLIP '{model}' from {weights or pretrained}: {load_error_text(error)}",
                             "check that the checkpoint is the state dict of this architecture, as .safetensors"
                             ) from None
    except Exception as error:
        if type(error).__name__ != "SafetensorError":  # safetensors' own class, imported only with it
            raise
        raise ModelFileError(f"cannot load CLIP '{model}' from {weights}: it is not a valid safetensors file "
                             f"({load_error_text(error)})", "write the weights with safetensors.torch.save_file"
                             ) from None
    finally:
        root.setLevel(level)
    clip = clip.to(device).eval()
    name = model if local else f"{model}@{weights.name if weights else pretrained or 'random'}"
    return LoadedClip(clip, preprocess, tokenizer(model, config), device, name)


def tokenizer(model: str, config: dict[str, Any]) -> Any:
    """open_clip's tokenizer for ``model``, never with remote code: a local-dir: folder's config may
    name no Hugging Face tokenizer (check_model refuses it), so its tokenizer is open_clip's own,
    built from the config that was checked rather than the folder read again; an open_clip
    architecture that uses a Hugging Face tokenizer (allowed with CURATE_ALLOW_HUB) gets it with
    ``trust_remote_code=False``. Bounded in time and memory whatever the texts
    (:mod:`curate_clip.tokens`)."""
    import open_clip

    from curate_clip.tokens import BoundedTokenizer

    text = config.get("text_cfg") or {}
    if model.startswith(LOCAL_DIR_PREFIX):
        return BoundedTokenizer(open_clip.SimpleTokenizer(context_length=text.get("context_length", 77)))
    if text.get("hf_tokenizer_name"):
        return BoundedTokenizer(open_clip.get_tokenizer(model, trust_remote_code=False))
    return BoundedTokenizer(open_clip.get_tokenizer(model))


def load_error_text(error: BaseException) -> str:
    """An exception's text on one line, with what it says about which tensor or key (torch puts each
    mismatched key on a line of its own after a heading) and without advice to unpickle anything."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if isinstance(error, pickle.UnpicklingError) or any("weights_only" in line for line in lines):
        found = next((line for line in lines if "Unsupported global" in line), "")
        return "the file holds objects other than tensors" + (f" ({found[:200]})" if found else "")
    text = lines[0]
    for line in lines[1:]:
        text += (" " if text.endswith(":") else "; ") + line
    return text if len(text) <= 600 else text[:600] + " …"


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
