"""What a captioner directory must hold, checked without loading it.

The ``realign``, ``train_captioner``, ``caption_pairs`` and ``preference_captioner`` steps call
:func:`captioner_problems` at plan time, and :meth:`Captioner.load` calls
:func:`check_captioner_directory` before it builds anything, so every entry point (steps, ``curate
captioner ...``, the evaluation scripts) refuses the same directories with the same messages.

The checks read JSON configs and the safetensors header only, never a tensor, never a pickle and
never code; they open regular files only (a FIFO or ``/dev/zero`` would hang or never end) and
refuse files above the sizes below before reading them. They bound every size the configs name
and estimate the parameter count from them, so a config cannot make the loader allocate terabytes.

Bounds (README, "A captioner is a directory"): every real small or medium captioner fits them,
from the world captioner (~2.4M parameters) to an OPT-1.3B or 7B Llama decoder behind a ViT-L/14.
"""

from __future__ import annotations

import ast
import math
import os
import re
import stat
from functools import cache
from pathlib import Path
from typing import Any

from curate.runfiles import describe_mode, json_value, read_bytes
from curate.safetensors_header import NotSafetensors, tensor_shapes
from curate_captioner.config import CONFIG_FILE, DECODER_CONFIG_FILE, FORMAT_VERSION, WEIGHTS_FILE
from curate_captioner.errors import CaptionerError, RefusedFile

TOKENIZER_FILE = "tokenizer.json"
MAX_JSON_BYTES = 16 * 2**20  # captioner.json (with its training history), decoder_config.json, tokenizer_config.json
MAX_TOKENIZER_BYTES = 256 * 2**20  # tokenizer.json: a 256k-token vocabulary is ~35 MB
MAX_PARAMETERS = 10_000_000_000  # 40 GB in fp32; CURATE_CAPTIONER_MAX_PARAMETERS raises it
MAX_PARAMETERS_ENV = "CURATE_CAPTIONER_MAX_PARAMETERS"
MAX_SIZE = 2**20  # any width, vocabulary, layer or head count a config names (OPT-1.3B: 50,272 tokens, 2,048 wide)
MAX_IMAGE_SIZE = 2048  # pixels per side of the encoder's input
ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")

# The files the loaders open (transformers' tokenizer reads the last four when they are there).
READ_FILES = (CONFIG_FILE, DECODER_CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, "tokenizer_config.json",
              "special_tokens_map.json", "added_tokens.json", "chat_template.jinja")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
WEIGHTS_HINT = ("save the captioner with Captioner.save(DIR), or convert its state dict with "
                "safetensors.torch.save_file")
REWRITE_HINT = "point at a directory written by Captioner.save (curate captioner train), or fix the field named"
# Decoder families whose position embeddings are a learned table of max_position_embeddings rows.
LEARNED_POSITIONS = frozenset({"gpt2", "opt", "gpt_bigcode", "gpt_neo", "biogpt", "xglm", "imagegpt", "ctrl"})
# Fields that size the decoder, by each name transformers configs use for them.
DECODER_FIELDS = {
    "vocab": ("vocab_size", "padded_vocab_size"),
    "hidden": ("hidden_size", "n_embd", "d_model", "dim"),
    "layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "ffn": ("moe_intermediate_size", "intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size", "d_ff"),
    "experts": ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"),
    "positions": ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len"),
}
SIZE_NAME = re.compile(r"(^|_)(size|dim|dims|layers|layer|heads|experts|positions|embd|inner|ctx|len)$|^n_|^num_")
BLOCK_INDEX = re.compile(r"\.(?:resblocks|layers|h|blocks)\.(\d+)\.")


class ModelDirectoryError(RefusedFile):
    """A captioner directory cannot be loaded as it is: the message names the directory, the file
    and field at fault (or the loader's own cause); refused before anything in it runs."""


def max_parameters() -> int:
    value = os.environ.get(MAX_PARAMETERS_ENV, "").replace("_", "")
    return int(value) if value.isdigit() else MAX_PARAMETERS


def captioner_problems(model: str) -> list[str]:
    """Plan-time problems with a captioner (``world`` or a directory), one sentence each."""
    from curate_captioner.config import resolve_model_path

    try:
        path = resolve_model_path(model)
    except CaptionerError as error:
        return [str(error).replace("\n  hint: ", " (") + (")" if error.hint else "")]
    return directory_problems(path)


def check_captioner_directory(path: Path) -> None:
    """Raise :class:`ModelDirectoryError` with every problem of the captioner directory ``path``."""
    problems = directory_problems(path)
    if problems:
        raise ModelDirectoryError("; ".join(problems), REWRITE_HINT)


def directory_problems(path: Path) -> list[str]:
    problems: list[str] = []
    for name in READ_FILES:
        problem = _not_regular(path / name)
        if problem:
            problems.append(f"captioner directory {path}: {name} {problem}")
    if problems:
        return problems  # never open a FIFO or a device, not even to read a config
    weights = path / WEIGHTS_FILE
    if not weights.exists():
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        found = f" (it holds {', '.join(pickles)}, which curate never unpickles)" if pickles else ""
        problems.append(f"captioner directory {path} has no {WEIGHTS_FILE}{found}: {WEIGHTS_HINT}")
    for name in (DECODER_CONFIG_FILE, TOKENIZER_FILE):
        if not (path / name).exists():
            problems.append(f"captioner directory {path} has no {name}")
    meta = _read_json(path / CONFIG_FILE, problems)
    decoder = _read_json(path / DECODER_CONFIG_FILE, problems) if (path / DECODER_CONFIG_FILE).exists() else None
    for name, limit in ((TOKENIZER_FILE, MAX_TOKENIZER_BYTES), ("tokenizer_config.json", MAX_JSON_BYTES)):
        if (path / name).exists() and (size := (path / name).stat().st_size) > limit:
            problems.append(f"{path / name} is {size:,} bytes, more than the {limit:,} a tokenizer file may have")
    counts: dict[str, int] = {}
    if isinstance(meta, dict):
        counts.update(_captioner_json_problems(path / CONFIG_FILE, meta, problems))
    if isinstance(decoder, dict):
        model_type = meta.get("decoder_model_type") if isinstance(meta, dict) else None
        counts.update(decoder_config_problems(path / DECODER_CONFIG_FILE, decoder, model_type, problems))
    total = sum(v for k, v in counts.items() if k.endswith("parameters"))
    if not problems and total > max_parameters():
        parts = ", ".join(f"{k.split()[0]} {v:,}" for k, v in counts.items() if k.endswith("parameters"))
        problems.append(f"captioner directory {path}: its configs describe about {total:,} parameters ({parts}), "
                        f"more than the {max_parameters():,} a captioner may have (set {MAX_PARAMETERS_ENV} to allow more)")
    if weights.exists() and not problems:
        _weights_problems(weights, counts, problems)
    return problems


def _not_regular(path: Path) -> str | None:
    """Why ``path`` may not be opened (None: absent, or a regular file, through symlinks)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "is a broken symlink" if path.is_symlink() else None
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if stat.S_ISREG(mode):
        return None
    target = f" (a symlink to {os.path.realpath(path)})" if path.is_symlink() else ""
    return f"is {describe_mode(mode)}{target}, not a regular file"


def _read_json(path: Path, problems: list[str]) -> Any:
    if not path.exists():
        problems.append(f"{path} does not exist")
        return None
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        problems.append(f"{path} is {size:,} bytes, more than the {MAX_JSON_BYTES:,} a config may have")
        return None
    try:
        data = json_value(read_bytes(path, MAX_JSON_BYTES), path)
    except (OSError, ValueError) as error:
        problems.append(f"{path} is not JSON ({str(error).splitlines()[0]})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path} is not a JSON object")
        return None
    return data


def _int_field(where: str, value: Any, low: int, high: int, problems: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"{where} must be a whole number, got {value!r}")
        return None
    if not low <= value <= high:
        problems.append(f"{where} must be between {low:,} and {high:,}, got {value:,}")
        return None
    return value


def _captioner_json_problems(path: Path, meta: dict[str, Any], problems: list[str]) -> dict[str, int]:
    from pydantic import ValidationError

    from curate_captioner.config import CaptionerConfig

    if meta.get("format_version") != FORMAT_VERSION:
        problems.append(f"{path}: format_version is {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
        return {}
    counts: dict[str, int] = {}
    try:
        config = CaptionerConfig(**meta["captioner"]) if isinstance(meta.get("captioner"), dict) else None
    except ValidationError as error:
        for item in error.errors():
            field = ".".join(str(p) for p in item["loc"])
            problems.append(f"{path}: captioner.{field}: {item['msg']}"
                            + (f", got {item['input']!r}" if item["type"] != "extra_forbidden" else ""))
        config = None
    if config is None and "captioner" not in meta:
        problems.append(f"{path} has no 'captioner' object")
    if config is not None and config.mapper_layers and config.mapper_width % config.mapper_heads:
        problems.append(f"{path}: captioner.mapper_heads ({config.mapper_heads}) must divide captioner.mapper_width "
                        f"({config.mapper_width})")
    encoder = meta.get("encoder")
    if not isinstance(encoder, dict):
        problems.append(f"{path} has no 'encoder' object (the open_clip tower's config)")
        return counts
    embed = _int_field(f"{path}: encoder.embed_dim", encoder.get("embed_dim"), 1, MAX_SIZE, problems)
    token_width, tower, tower_layers = _tower_problems(path, encoder, problems)
    if tower is not None:
        counts["encoder parameters"] = tower
    if tower_layers is not None:
        counts["encoder layers"] = tower_layers
    if config is not None and embed is not None:
        width, slots, layers = config.mapper_width, config.prefix_length, config.mapper_layers
        per_layer = (16 if config.features == "pooled+tokens" else 12) * width * width
        counts["mapper parameters"] = (embed + 2) * slots * width + layers * per_layer + (token_width or 0) * width
        counts["mapper layers"] = layers
        counts["mapper width"] = width
    if "decoder_model_type" in meta and not isinstance(meta["decoder_model_type"], str):
        problems.append(f"{path}: decoder_model_type must be a string, got {meta['decoder_model_type']!r}")
    return counts


def _tower_problems(path: Path, encoder: dict[str, Any],
                    problems: list[str]) -> tuple[int | None, int | None, int | None]:
    """(patch-token width, parameter estimate, blocks) of the open_clip tower in captioner.json."""
    where = f"{path}: encoder.vision_cfg"
    vision = encoder.get("vision_cfg")
    if not isinstance(vision, dict):
        problems.append(f"{where} must be an object (the open_clip vision config)")
        return None, None, None
    if not isinstance(encoder.get("quick_gelu"), bool):
        problems.append(f"{path}: encoder.quick_gelu must be true or false, got {encoder.get('quick_gelu')!r}")
    for name in ("mean", "std"):
        value = encoder.get(name)
        if not (isinstance(value, list) and len(value) == 3
                                      and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
            problems.append(f"{path}: encoder.{name} must be three numbers, got {value!r}")
    _int_field(f"{path}: encoder.image_size", encoder.get("image_size"), 1, MAX_IMAGE_SIZE, problems)
    if vision.get("timm_model_name") or vision.get("hf_model_name"):
        if vision.get("timm_model_pretrained"):
            problems.append(f"{where}.timm_model_pretrained would download weights; curate never downloads (set it false)")
        return None, None, None
    width = _int_field(f"{where}.width", vision.get("width", 768), 1, MAX_SIZE, problems)
    image = vision.get("image_size", 224)
    sides = image if isinstance(image, list) else [image]
    good_sides = [_int_field(f"{where}.image_size", side, 1, MAX_IMAGE_SIZE, problems) for side in sides]
    layers = vision.get("layers", 12)
    embed = encoder.get("embed_dim") if isinstance(encoder.get("embed_dim"), int) else 0
    if isinstance(layers, list):  # a ModifiedResNet: blocks per stage
        stages = [_int_field(f"{where}.layers[{i}]", n, 1, 256, problems) for i, n in enumerate(layers)]
        if width is None or None in stages or len(stages) != 4:
            if len(stages) != 4:
                problems.append(f"{where}.layers of a ResNet tower must list 4 stages, got {len(stages)}")
            return None, None, None
        blocks = sum(n * 4**i for i, n in enumerate(stages))  # type: ignore[operator]
        return None, 17 * width * width * blocks + 4 * (32 * width) ** 2 + 32 * width * embed, None
    layers = _int_field(f"{where}.layers", layers, 1, 256, problems)
    patch = _int_field(f"{where}.patch_size", vision.get("patch_size", 16), 1, MAX_IMAGE_SIZE, problems)
    ratio = vision.get("mlp_ratio", 4.0)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 64:
        problems.append(f"{where}.mlp_ratio must be a number in (0, 64], got {ratio!r}")
        return None, None, None
    if width is None or layers is None or patch is None or None in good_sides:
        return None, None, None
    grid = 1
    for side in good_sides:
        grid *= max(1, side // patch)  # type: ignore[operator]
    parameters = 3 * patch * patch * width + (grid + 1) * width + layers * int((4 + 2 * ratio) * width * width)
    return width, parameters + width * embed, layers


def _decoder_field(config: dict[str, Any], kind: str) -> tuple[str | None, Any]:
    for source in (config, config.get("text_config") if isinstance(config.get("text_config"), dict) else {}):
        for name in DECODER_FIELDS[kind]:
            if source.get(name) is not None:
                return name, source[name]
    return None, None


def decoder_config_problems(path: Path, config: dict[str, Any], meta_type: Any,
                      problems: list[str]) -> dict[str, int]:
    from curate.suggest import closest

    before = len(problems)
    model_type = config.get("model_type", meta_type)
    known = causal_lm_types()
    if not isinstance(model_type, str):
        problems.append(f"{path}: model_type is missing (and captioner.json has no decoder_model_type)")
    elif known and model_type not in known:
        close = closest(model_type, known, n=3)
        problems.append(f"{path}: model_type '{model_type}' is not a causal LM this transformers builds"
                        + (f" (closest: {', '.join(close)})" if close else "")
                        + "; curate never runs a model directory's own code (auto_map)")
    attention = config.get("attn_implementation", config.get("_attn_implementation"))
    if attention is not None and attention not in ATTENTION_IMPLEMENTATIONS:
        problems.append(f"{path}: attn_implementation {attention!r} is not one of {', '.join(ATTENTION_IMPLEMENTATIONS)} "
                        "(a hub kernel would be downloaded; curate never downloads)")

    def sizes(data: dict[str, Any], prefix: str) -> None:
        for name, value in data.items():
            if isinstance(value, dict) and name.endswith("_config"):
                sizes(value, f"{prefix}{name}.")
            elif SIZE_NAME.search(name) and isinstance(value, int) and not isinstance(value, bool) \
                    and not -1 <= value <= MAX_SIZE:
                problems.append(f"{path}: {prefix}{name} must be between 0 and {MAX_SIZE:,}, got {value:,}")

    sizes(config, "")
    values: dict[str, int] = {}
    for kind, default in (("vocab", None), ("hidden", None), ("layers", None), ("ffn", 0), ("experts", 1),
                          ("positions", 0)):
        name, value = _decoder_field(config, kind)
        if name is None:
            if default is None:
                problems.append(f"{path}: no {DECODER_FIELDS[kind][0]} (or {', '.join(DECODER_FIELDS[kind][1:])})")
                continue
            value = default
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
            if not any(f"{name} must be" in p for p in problems[before:]):
                problems.append(f"{path}: {name} must be a whole number between 0 and {MAX_SIZE:,}, got {value!r}")
            continue
        values[kind] = value
    if len(problems) > before or len(values) < 6:
        return {}
    hidden, ffn = values["hidden"], values["ffn"] or 4 * values["hidden"]
    embeddings = values["vocab"] * hidden * (1 if config.get("tie_word_embeddings", True) else 2)
    positions = values["positions"] * hidden if model_type in LEARNED_POSITIONS else 0
    per_layer = 4 * hidden * hidden + 3 * hidden * ffn * max(1, values["experts"])
    return {"decoder parameters": embeddings + positions + values["layers"] * per_layer,
            "decoder layers": values["layers"], "decoder vocab": values["vocab"]}


@cache
def causal_lm_types() -> frozenset[str]:
    """The decoder model types transformers' AutoModelForCausalLM builds, read from its source
    (importing it would import torch, seconds at plan time); empty when it cannot be read."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("transformers")
        if spec is None or not spec.submodule_search_locations:
            return frozenset()
        source = Path(list(spec.submodule_search_locations)[0]) / "models" / "auto" / "modeling_auto.py"
        tree = ast.parse(source.read_text())
    except (OSError, SyntaxError, ImportError, ValueError):
        return frozenset()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"
                                                for t in node.targets):
            try:
                return frozenset(name for name, _ in ast.literal_eval(node.value.args[0]))  # type: ignore[attr-defined]
            except (ValueError, AttributeError, IndexError, TypeError):
                return frozenset()
    return frozenset()


def _weights_problems(path: Path, counts: dict[str, int], problems: list[str]) -> None:
    """The safetensors header, checked as safetensors checks it on load (curate.safetensors_header);
    every tensor of one of the three parts, as many blocks per part as the configs say, and no
    more parameters than allowed."""
    try:
        shapes = tensor_shapes(path)
    except NotSafetensors as exc:
        problems.append(f"{path} {exc}")
        return
    elements = 0
    blocks: dict[str, set[int]] = {"encoder": set(), "mapper": set(), "decoder": set()}
    for name, shape in shapes.items():
        part = name.split(".", 1)[0]
        if part not in blocks:
            problems.append(f"{path}: tensor '{name}' belongs to no part of a captioner (encoder., mapper., decoder.)")
            return
        elements += math.prod(shape)
        index = BLOCK_INDEX.search(name[len(part):])
        if index and not (part == "encoder" and ".transformer." not in name):
            blocks[part].add(int(index.group(1)))
    if elements > max_parameters():
        problems.append(f"{path} holds {elements:,} parameters, more than the {max_parameters():,} a captioner may have "
                        f"(set {MAX_PARAMETERS_ENV} to allow more)")
    expected = {"encoder": (counts.get("encoder layers"), f"{CONFIG_FILE} encoder.vision_cfg.layers"),
                "mapper": (counts.get("mapper layers"), f"{CONFIG_FILE} captioner.mapper_layers"),
                "decoder": (counts.get("decoder layers"), f"{DECODER_CONFIG_FILE} num_hidden_layers")}
    for part, (want, field) in expected.items():
        have = len(blocks[part])
        if want is not None and have and have != want:
            problems.append(f"{path} holds {have} {part} blocks but {field} says {want}")
