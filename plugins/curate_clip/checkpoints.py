"""Plan-time checks of a CLIP model choice that read files but build nothing.

- the architecture: its open_clip config (open_clip's own ``model_configs``, ours in ``configs/``,
  or a ``local-dir:`` folder), looked up without importing open_clip;
- the weights: a ``.safetensors`` file's header (names, dtypes and shapes; the tensors are never
  read), or a torch state dict read with ``weights_only=True`` and memory-mapped (never unpickled
  beyond tensors and containers);
- that they fit: the shapes the config implies for the main parameters (patch embedding, position
  embeddings, projections, token embedding, number of blocks) against the checkpoint's.
"""

from __future__ import annotations

import importlib.util
import json
import re
import struct
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.suggest import closest

CONFIG_DIR = Path(__file__).parent / "configs"
LOCAL_DIR_PREFIX = "local-dir:"
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
SAFE_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


class ModelFileError(CurateError):
    """A model file or name is not what it must be: bad input, so exit 2 from the CLI."""

    exit_code = 2


def open_clip_configs() -> dict[str, Path]:
    """Architecture name → config file, as open_clip lists them plus ours, without importing it."""
    found: dict[str, Path] = {}
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in [Path(p) / "model_configs" for p in locations] + [CONFIG_DIR]:
        for path in sorted(folder.glob("*.json")):
            found[path.stem] = path
    return found


def architecture_config(model: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the open_clip config of ``model``, None) or (None, the problem)."""
    if model.startswith(LOCAL_DIR_PREFIX):
        path = Path(model.removeprefix(LOCAL_DIR_PREFIX)).expanduser() / "open_clip_config.json"
        if not path.is_file():
            return None, f"model '{model}': {path} does not exist (a local-dir: model needs open_clip_config.json)"
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            return None, f"model '{model}': {path} is not JSON ({error})"
        return config.get("model_cfg", config), None
    configs = open_clip_configs()
    name = model.replace("/", "-")
    if name not in configs:
        close = closest(name, configs, n=3)
        return None, (f"model '{model}' is not an open_clip architecture"
                      + (f" (closest: {', '.join(close)})" if close else "")
                      + "; open_clip.list_models() lists them")
    try:
        return json.loads(configs[name].read_text()), None
    except (OSError, ValueError) as error:
        return None, f"model '{model}': its config {configs[name]} is not JSON ({error})"


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name → shape from a safetensors header, checked against the file's size."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ModelFileError(f"checkpoint {path} is not a safetensors file: {size} bytes, shorter than a header",
                                 SAFETENSORS_HINT)
        (length,) = struct.unpack("<Q", head)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise ModelFileError(f"checkpoint {path} is not a safetensors file: its header claims {length:,} bytes "
                                 f"of a {size:,}-byte file", SAFETENSORS_HINT)
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise ModelFileError(f"checkpoint {path} is not a safetensors file: its header is not a JSON object",
                             SAFETENSORS_HINT)
    shapes, data = {}, size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            shape = [int(n) for n in entry["shape"]]
            begin, end = (int(n) for n in entry["data_offsets"])
            entry["dtype"].upper()
        except (TypeError, KeyError, ValueError, AttributeError):
            raise ModelFileError(f"checkpoint {path} is not a safetensors file: tensor '{name}' has no "
                                 "dtype, shape and data offsets", SAFETENSORS_HINT) from None
        if not 0 <= begin <= end <= data:
            raise ModelFileError(f"checkpoint {path} is truncated or corrupt: tensor '{name}' lies at bytes "
                                 f"{begin}–{end} of {data} bytes of data", SAFETENSORS_HINT)
        shapes[name] = shape
    return shapes


SAFETENSORS_HINT = "write the weights with safetensors.torch.save_file(state_dict, PATH), or point at the right file"
TORCH_HINT = ("only tensors and containers of them are read from a .pt/.bin file (never other pickled objects): "
              "save `model.state_dict()` with torch.save, or better as .safetensors")


def torch_state_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name → shape of a torch state dict, read with ``weights_only=True`` and mmap (the
    tensors' bytes are not read); a pickle that needs more than tensors is refused."""
    import torch

    try:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            state = torch.load(str(path), map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as error:
        found = re.search(r"Unsupported global: GLOBAL [\w.]+", str(error))
        what = found.group(0) if found else type(error).__name__
        raise ModelFileError(f"checkpoint {path} is refused: it is not a torch state dict of tensors ({what})",
                             TORCH_HINT) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelFileError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict", TORCH_HINT)
    return {str(k).removeprefix("module."): list(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


def checkpoint_shapes(path: Path) -> dict[str, list[int]]:
    if path.suffix == ".safetensors":
        return safetensors_shapes(path)
    if path.suffix in TORCH_SUFFIXES:
        return torch_state_shapes(path)
    raise ModelFileError(f"checkpoint {path}: '{path.suffix}' is not a weights format curate reads",
                         f"use a .safetensors file (or a state dict saved as {', '.join(TORCH_SUFFIXES)})")


def expected_shapes(config: dict[str, Any]) -> tuple[dict[str, list[int]], dict[str, int]]:
    """(parameter → shape, block prefix → count) that a ViT/text-transformer CLIP of ``config``
    has; empty for towers defined elsewhere (timm, Hugging Face, ResNet) and for CoCa (its pooler
    and context differ), which are not checked. Measured against every open_clip config built on
    the meta device: the shapes agree for all 132 checked."""
    shapes: dict[str, list[int]] = {}
    blocks: dict[str, int] = {}
    if config.get("multimodal_cfg"):
        return shapes, blocks
    embed = int(config.get("embed_dim", 0))
    vision = config.get("vision_cfg") or {}
    if not vision.get("timm_model_name") and isinstance(vision.get("layers", 12), int):
        width, patch = int(vision.get("width", 768)), vision.get("patch_size", 16)
        image = vision.get("image_size", 224)
        height, wide = (image, image) if isinstance(image, int) else image
        patch_h, patch_w = (patch, patch) if isinstance(patch, int) else patch
        shapes["visual.conv1.weight"] = [width, 3, patch_h, patch_w]
        shapes["visual.class_embedding"] = [width]
        if vision.get("pos_embed_type", "learnable") == "learnable":
            shapes["visual.positional_embedding"] = [(height // patch_h) * (wide // patch_w) + 1, width]
        if embed:
            shapes["visual.proj"] = [width, embed]
        blocks["visual.transformer.resblocks."] = int(vision.get("layers", 12))
    text = config.get("text_cfg") or {}
    if not text.get("hf_model_name"):
        width = int(text.get("width", 512))
        for prefix in ("", "text."):
            shapes[f"{prefix}token_embedding.weight"] = [int(text.get("vocab_size", 49408)), width]
            shapes[f"{prefix}positional_embedding"] = [int(text.get("context_length", 77)), width]
            if embed:
                shapes[f"{prefix}text_projection"] = [width, embed]
            blocks[f"{prefix}transformer.resblocks."] = int(text.get("layers", 12))
    return shapes, blocks


def fit_problems(model: str, config: dict[str, Any], path: Path, found: dict[str, list[int]]) -> list[str]:
    """Where the checkpoint's tensors do not fit the architecture (at most a few, named)."""
    shapes, blocks = expected_shapes(config)
    if not shapes:
        return []
    checked = [name for name in shapes if name in found]
    if not checked and not any(name.startswith(tuple(blocks)) for name in found):
        sample = ", ".join(sorted(found)[:3]) or "no tensors"
        return [f"checkpoint {path} holds no weights of a '{model}' CLIP (it has {sample}); "
                "is it the state dict of an open_clip model?"]
    wrong = [f"{name} is {found[name]}, '{model}' needs {shapes[name]}" for name in checked
             if found[name] != shapes[name] and not (name.endswith("text_projection") and len(found[name]) != 2)]
    for prefix, count in blocks.items():
        indices = {int(m.group(1)) for name in found if (m := re.match(re.escape(prefix) + r"(\d+)\.", name))}
        if indices and len(indices) != count:
            wrong.append(f"{prefix.rstrip('.')} has {len(indices)} blocks, '{model}' has {count}")
    if not wrong:
        return []
    more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
    return [f"checkpoint {path} does not fit '{model}': " + "; ".join(wrong[:3]) + more
            + " — choose the architecture these weights were trained as"]


def check_architecture_and_weights(model: str, weights: Path | None) -> list[str]:
    """Plan-time problems with an architecture name and its local weights (nothing is built)."""
    config, problem = architecture_config(model)
    if problem:
        return [problem]
    if weights is None or not weights.is_file():
        return []
    try:
        found = checkpoint_shapes(weights)
    except ModelFileError as error:
        return [str(error).replace("\n  hint: ", " (") + (")" if error.hint else "")]
    assert config is not None
    return fit_problems(model, config, weights, found)
