"""Plan-time checks of a CLIP model choice that read files but build nothing.

- the architecture: its open_clip config (open_clip's own ``model_configs``, ours in ``configs/``,
  or a ``local-dir:`` folder), looked up without importing open_clip, and checked for what would
  make open_clip import code or download (a Hugging Face tokenizer or text model, ``tokenizer_kwargs``,
  ``trust_remote_code``, pretrained timm weights) and for sizes no real CLIP has (a memory bomb);
- a ``local-dir:`` folder's weights: the file open_clip would load from it;
- the weights: a ``.safetensors`` file's header (names, dtypes and shapes; the tensors are never
  read), or a torch state dict read with ``weights_only=True`` and memory-mapped (never unpickled
  beyond tensors and containers);
- that they fit: the shapes the config implies for the main parameters (patch embedding, position
  embeddings, projections, token embedding, number of blocks) against the checkpoint's.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import json
import math
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.runfiles import describe_mode
from curate.safetensors_header import NotSafetensors, tensor_shapes
from curate.suggest import closest

CONFIG_DIR = Path(__file__).parent / "configs"
LOCAL_DIR_PREFIX = "local-dir:"
MAX_CONFIG_BYTES = 1_000_000  # an open_clip config is a few hundred bytes
# open_clip's _find_checkpoint_in_dir (factory.py) loads the first of these a local-dir: folder holds.
# Any other *.safetensors/*.bin/*.pth it would pick by name order; curate asks for one of these.
LOCAL_DIR_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                     "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth",
                     "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth")
LOCAL_DIR_WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pth")  # what open_clip's folder search looks at
# Bounds on an architecture, so a config cannot ask for more memory than any CLIP needs. Every
# open_clip config fits (tests/clip/test_model_files.py): the largest, ViT-e-14, has ~4.6e9
# parameters; the longest text context is 77 tokens, the largest image 512 px in 1,024 patches.
MAX_PARAMETERS = 6_000_000_000  # 24 GB of float32 weights
MAX_CONTEXT_LENGTH = 1024  # the text tower's causal mask is context² floats
MAX_IMAGE_SIZE = 1024  # pixels a side
MAX_IMAGE_TOKENS = 4096  # patches per image: attention is tokens² per head
MAX_LAYERS = 256  # per tower
# Keys of text_cfg that make open_clip build a Hugging Face tokenizer or text model: from a
# local-dir: folder that loads the folder's own tokenizer code (auto_map, with tokenizer_kwargs'
# trust_remote_code), otherwise it downloads from the hub.
HF_TEXT_KEYS = ("hf_tokenizer_name", "hf_model_name", "hf_model_pretrained", "tokenizer_kwargs")
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


def not_regular_file(path: Path) -> str | None:
    """Why ``path`` is not a regular file one can read to its end (None when it is): a directory,
    a FIFO that blocks, a device such as /dev/zero that never ends, or a link to one."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if stat.S_ISREG(mode):
        return None
    return f"is {describe_mode(mode)}, not a regular file" + (f" (a link to {os.path.realpath(path)})" if path.is_symlink() else "")


def local_dir_folder(model: str) -> Path:
    return Path(model.removeprefix(LOCAL_DIR_PREFIX)).expanduser()


def local_dir_files(model: str) -> list[str]:
    """What a ``local-dir:`` model reads, as the spec names it (for a spec run with --untrusted,
    which may name only files inside the working directory): the folder, its config and each
    weights file open_clip may load from it (a link among them may point anywhere); [] for an
    architecture name."""
    if not model.startswith(LOCAL_DIR_PREFIX):
        return []
    folder = model.removeprefix(LOCAL_DIR_PREFIX)
    names = [name for name in ("open_clip_config.json", *LOCAL_DIR_WEIGHTS)
             if os.path.lexists(local_dir_folder(model) / name)]
    return [folder] + [f"{folder.rstrip('/')}/{name}" for name in names]


_WEIGHTS_TO_COME: contextvars.ContextVar[frozenset[Path]] = contextvars.ContextVar("weights_to_come",
                                                                                   default=frozenset())


@contextlib.contextmanager
def weights_to_come(folder: Path) -> Iterator[None]:
    """Within this block, plan-time checks accept the ``local-dir:`` ``folder`` without weights:
    a stand-in for a model that a later stage trains (an experiment validating its variants).
    Loading it still needs its weights."""
    token = _WEIGHTS_TO_COME.set(_WEIGHTS_TO_COME.get() | {Path(folder).resolve()})
    try:
        yield
    finally:
        _WEIGHTS_TO_COME.reset(token)


def local_dir_weights(model: str) -> tuple[Path | None, str | None]:
    """(the weights file open_clip loads from a ``local-dir:`` folder, None) or (None, the problem).

    open_clip loads the first of ``LOCAL_DIR_WEIGHTS`` the folder holds (whatever kind of file it
    is); with none it would take any other weights-like file by name order, and with no file at
    all it builds the model with random weights and only logs a warning."""
    folder = local_dir_folder(model)
    present = [folder / name for name in LOCAL_DIR_WEIGHTS if os.path.lexists(folder / name)]
    if present:
        why = not_regular_file(present[0])
        if why:
            return None, (f"model '{model}': its weights {present[0]} {why}: open_clip would load it "
                          "(the first of its weight file names the folder holds)")
        return present[0], None
    if folder.resolve() in _WEIGHTS_TO_COME.get():
        return None, None
    others = sorted({path.name for pattern in LOCAL_DIR_WEIGHT_GLOBS for path in folder.glob(pattern)})
    looked = f"looked for {', '.join(LOCAL_DIR_WEIGHTS)}"
    if others:
        return None, (f"model '{model}': the folder's weights {', '.join(others[:3])} have none of the names "
                      f"curate reads from a local-dir: folder ({looked}): rename them to open_clip_model.safetensors")
    return None, (f"model '{model}': the folder has no weights file ({looked}), and open_clip would score with "
                  "a randomly initialized CLIP: save the weights there as open_clip_model.safetensors")


def _positive_int(value: Any, pair: bool = False) -> bool:
    if pair and isinstance(value, (list, tuple)):
        return len(value) == 2 and all(_positive_int(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


# Fields whose type the size checks rely on: (config section, key, allows an (h, w) pair).
INT_FIELDS = (("", "embed_dim", False), ("vision_cfg", "width", False), ("vision_cfg", "head_width", False),
              ("vision_cfg", "image_size", True), ("vision_cfg", "patch_size", True),
              ("text_cfg", "context_length", False), ("text_cfg", "vocab_size", False), ("text_cfg", "width", False),
              ("text_cfg", "heads", False), ("text_cfg", "layers", False), ("multimodal_cfg", "width", False),
              ("multimodal_cfg", "layers", False), ("multimodal_cfg", "context_length", False),
              ("multimodal_cfg", "vocab_size", False), ("multimodal_cfg", "heads", False))


def _contains_key(value: Any, key: str) -> bool:
    if isinstance(value, dict):
        return key in value or any(_contains_key(v, key) for v in value.values())
    if isinstance(value, list):
        return any(_contains_key(v, key) for v in value)
    return False


def estimated_parameters(config: dict[str, Any]) -> int:
    """About how many parameters open_clip builds for ``config`` (the transformer blocks, the
    embeddings and projections: within 15 % of what open_clip builds for ViT, ResNet and CoCa
    configs, 10 % for ViT/text-transformer CLIPs; tests/clip/test_model_files.py). A tower from timm
    counts as nothing: its size is timm's registry's, not the config's."""
    embed = config.get("embed_dim", 512)
    total = 0.0
    vision = config["vision_cfg"]
    if not vision.get("timm_model_name"):
        width, layers, ratio = vision.get("width", 768), vision.get("layers", 12), vision.get("mlp_ratio", 4.0)
        if isinstance(layers, list):  # ModifiedResNet: bottlenecks of 4x their planes, then an attention pool
            total += sum(blocks * 17 * (width * 2 ** stage) ** 2 for stage, blocks in enumerate(layers))
            total += 4 * (32 * width) ** 2 + (32 * width) * embed
        else:
            total += layers * (4 + 2 * ratio) * width ** 2 + (_image_tokens(vision) + 1) * width + width * embed
            patch = vision.get("patch_size", 16)
            total += width * 3 * (patch[0] * patch[1] if isinstance(patch, list) else patch ** 2)
    text = config["text_cfg"]
    if not text.get("hf_model_name"):
        width = text.get("width", 512)
        total += text.get("layers", 12) * (4 + 2 * text.get("mlp_ratio", 4.0)) * width ** 2
        total += (text.get("vocab_size", 49408) + text.get("context_length", 77) + embed) * width
    multimodal = config.get("multimodal_cfg") or {}
    if multimodal:  # CoCa's decoder: self- and cross-attention per block, and its vocabulary
        width = multimodal.get("width", 512)
        total += multimodal.get("layers", 12) * (8 + 2 * multimodal.get("mlp_ratio", 4.0)) * width ** 2
        total += multimodal.get("vocab_size", 49408) * width
    return int(total)


def _image_tokens(vision: dict[str, Any]) -> int:
    image, patch = vision.get("image_size", 224), vision.get("patch_size", 16)
    height, wide = (image, image) if isinstance(image, int) else image
    patch_h, patch_w = (patch, patch) if isinstance(patch, int) else patch
    return (height // patch_h) * (wide // patch_w)


def config_problems(model: str, config: Any, local: bool, offline: bool = True) -> list[str]:
    """What is wrong with an open_clip model config before anything is built from it.

    ``local``: the config comes from a ``local-dir:`` folder, i.e. from whoever wrote the folder,
    not from open_clip's or curate's own configs. ``offline``: no hub may be contacted."""
    where = f"model '{model}'"
    if not isinstance(config, dict):
        return [f"{where}: its config is a {type(config).__name__}, not an object of open_clip settings "
                "(embed_dim, vision_cfg, text_cfg)"]
    for section in ("vision_cfg", "text_cfg"):
        if not isinstance(config.get(section), dict):
            return [f"{where}: its config's {section} is {'missing' if section not in config else 'not an object'}; "
                    "open_clip needs both vision_cfg and text_cfg objects"]
    if "multimodal_cfg" in config and not isinstance(config["multimodal_cfg"], dict):
        return [f"{where}: its config's multimodal_cfg is not an object"]
    problems = []
    if _contains_key(config, "trust_remote_code"):
        problems.append(f"{where}: its config sets trust_remote_code, which would let Hugging Face run Python "
                        "code from the model folder; curate never runs a model's code")
    text, vision = config["text_cfg"], config["vision_cfg"]
    if local:
        named = [key for key in HF_TEXT_KEYS if key in text]
        if named:
            verb = "are" if len(named) > 1 else "is"
            problems.append(f"{where}: text_cfg.{', text_cfg.'.join(named)} {verb} refused in a config that came "
                            "with a model (a local-dir: folder's, a config file): "
                            "open_clip would build a Hugging Face tokenizer or text model from the folder "
                            "(importing any code its tokenizer_config.json names) or download one; curate scores "
                            "with open_clip's own text transformer and tokenizer: remove the key"
                            + ("s" if len(named) > 1 else ""))
    elif offline:
        for key in ("hf_tokenizer_name", "hf_model_name"):
            if key in text:
                problems.append(f"{where}: its text tower needs text_cfg.{key} '{text[key]}' from the Hugging Face "
                                "hub, and this machine is offline (CURATE_ALLOW_HUB=1 on a machine that can reach "
                                "the hub)")
    if vision.get("timm_model_pretrained"):
        problems.append(f"{where}: vision_cfg.timm_model_pretrained would download timm's weights for the image "
                        "tower: set it to false (the checkpoint holds the tower's weights)")
    timm_name = vision.get("timm_model_name")
    if timm_name is not None and (not isinstance(timm_name, str) or ":" in timm_name or "/" in timm_name):
        problems.append(f"{where}: vision_cfg.timm_model_name {timm_name!r} is not a timm architecture name "
                        "(a hub or folder reference would make timm download or read a model config)")
    typed = True
    for section, key, pair in INT_FIELDS:
        values = config if not section else (config.get(section) or {})
        resnet_patch = key == "patch_size" and values[key] is None if key in values else False
        if key in values and not resnet_patch and not _positive_int(values[key], pair):
            typed = False
            problems.append(f"{where}: {(section + '.') if section else ''}{key} is {values[key]!r}, "
                            f"not a positive integer{' or a pair of them' if pair else ''}")
    layers = vision.get("layers", 12)
    if vision.get("patch_size", 16) is None and not isinstance(layers, list) and not vision.get("timm_model_name"):
        typed = False
        problems.append(f"{where}: vision_cfg.patch_size is null, which only a ResNet (layers: a list of 4) may have")
    if not (_positive_int(layers) or (isinstance(layers, list) and len(layers) == 4
                                      and all(_positive_int(n) for n in layers))):
        typed = False
        problems.append(f"{where}: vision_cfg.layers is {layers!r}, not a positive integer (a ViT) or a list of "
                        "4 (a ResNet)")
    for section in ("vision_cfg", "text_cfg", "multimodal_cfg"):
        if "mlp_ratio" in (config.get(section) or {}) and not _positive_number(config[section]["mlp_ratio"]):
            typed = False
            problems.append(f"{where}: {section}.mlp_ratio is {config[section]['mlp_ratio']!r}, not a positive number")
    if not typed:
        return problems
    return problems + size_problems(where, config)


def size_problems(where: str, config: dict[str, Any]) -> list[str]:
    """Sizes beyond what any CLIP needs: building such a model would take tens of GB or more."""
    problems = []
    text, vision = config["text_cfg"], config["vision_cfg"]
    for section in ("text_cfg", "multimodal_cfg"):
        length = (config.get(section) or {}).get("context_length", 77)
        if length > MAX_CONTEXT_LENGTH:
            problems.append(f"{where}: {section}.context_length is {length:,} tokens, more than curate's limit of "
                            f"{MAX_CONTEXT_LENGTH:,} (open_clip's models use 77 or fewer; the causal mask alone "
                            f"would be {length ** 2 * 4 / 1e9:,.0f} GB)")
    image = vision.get("image_size", 224)
    if max(image if isinstance(image, list) else [image]) > MAX_IMAGE_SIZE:
        problems.append(f"{where}: vision_cfg.image_size is {image}, more than curate's limit of {MAX_IMAGE_SIZE} "
                        "pixels a side (open_clip's models use 512 or fewer)")
    elif not vision.get("timm_model_name") and not isinstance(vision.get("layers", 12), list) \
            and _image_tokens(vision) > MAX_IMAGE_TOKENS:
        problems.append(f"{where}: vision_cfg.image_size {image} in patches of {vision.get('patch_size', 16)} is "
                        f"{_image_tokens(vision):,} patches, more than curate's limit of {MAX_IMAGE_TOKENS:,}")
    for section in ("vision_cfg", "text_cfg", "multimodal_cfg"):
        layers = (config.get(section) or {}).get("layers", 12)
        count = sum(layers) if isinstance(layers, list) else layers
        if count > MAX_LAYERS:
            problems.append(f"{where}: {section}.layers is {layers}, more than curate's limit of {MAX_LAYERS} blocks")
    heads = text.get("heads", 8)
    if not text.get("hf_model_name") and text.get("width", 512) % heads:
        problems.append(f"{where}: text_cfg.width {text.get('width', 512)} does not divide into {heads} heads")
    if not problems:
        count = estimated_parameters(config)
        if count > MAX_PARAMETERS:
            problems.append(f"{where}: its config describes a CLIP of about {count / 1e9:,.1f} billion parameters, "
                            f"more than curate's limit of {MAX_PARAMETERS / 1e9:,.0f} billion (the largest open_clip "
                            "model, ViT-e-14, has 4.6): check the widths, layers and vocabulary size")
    return problems


def _read_config(model: str, path: Path) -> tuple[Any, str | None]:
    why = not_regular_file(path)
    if why:
        return None, f"model '{model}': {path} {why} (a local-dir: model needs open_clip_config.json)"
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        return None, f"model '{model}': {path} is {size:,} bytes, not an open_clip config (those are a few hundred)"
    try:
        return json.loads(path.read_text()), None
    except (OSError, ValueError, RecursionError) as error:
        return None, f"model '{model}': {path} is not JSON ({str(error)[:200]})"


def architecture_config(model: str, offline: bool = True) -> tuple[dict[str, Any] | None, str | None]:
    """(the open_clip config of ``model``, None) or (None, its problems), checked for what makes
    open_clip import code or download (``offline``: no hub) and for sizes beyond any CLIP's."""
    if model.startswith(LOCAL_DIR_PREFIX):
        path = local_dir_folder(model) / "open_clip_config.json"
        config, problem = _read_config(model, path)
        if problem:
            return None, problem
        if not isinstance(config, dict) or "model_cfg" not in config:
            return None, (f"model '{model}': {path} has no 'model_cfg' (open_clip reads a local-dir: config as "
                          '{"model_cfg": {...}, "preprocess_cfg": {...}})')
        problems = config_problems(model, config["model_cfg"], local=True, offline=offline)
        return (None, "; ".join(problems)) if problems else (config["model_cfg"], None)
    configs = open_clip_configs()
    name = model.replace("/", "-")
    if name not in configs:
        close = closest(name, configs, n=3)
        return None, (f"model '{model}' is not an open_clip architecture"
                      + (f" (closest: {', '.join(close)})" if close else "")
                      + "; open_clip.list_models() lists them")
    config, problem = _read_config(model, configs[name])
    if problem:
        return None, problem
    problems = config_problems(model, config, local=False, offline=offline)
    return (None, "; ".join(problems)) if problems else (config, None)


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name → shape from a safetensors header, checked against the file's size."""
    try:
        return tensor_shapes(path)
    except NotSafetensors as exc:
        raise ModelFileError(f"checkpoint {path} {exc}", SAFETENSORS_HINT) from None



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
    why = not_regular_file(path)
    if why:
        raise ModelFileError(f"checkpoint {path} {why}", "point at the weights file itself")
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


def check_architecture_and_weights(model: str, weights: Path | None, offline: bool = True) -> list[str]:
    """Plan-time problems with an architecture name and its local weights (nothing is built)."""
    config, problem = architecture_config(model, offline)
    if problem:
        return [problem]
    if weights is None:
        return []
    why = not_regular_file(weights)
    if why:
        return [f"checkpoint {weights} {why}: point at the weights file itself"]
    try:
        found = checkpoint_shapes(weights)
    except ModelFileError as error:
        return [str(error).replace("\n  hint: ", " (") + (")" if error.hint else "")]
    assert config is not None
    return fit_problems(model, config, weights, found)
