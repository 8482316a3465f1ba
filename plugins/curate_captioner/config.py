"""The captioner's hyper-parameters and the layout of a saved captioner directory.

A captioner is a directory; the world captioner shipped with this package and a 1.3B OPT one are
written and read by the same code:

    captioner.json         CaptionerConfig (this module) + encoder config + training facts
    model.safetensors      every weight, keys prefixed "encoder.", "mapper.", "decoder."
    decoder_config.json    the decoder's transformers config (AutoConfig.for_model rebuilds it)
    tokenizer.json …       the decoder's tokenizer (PreTrainedTokenizerFast.save_pretrained)

Nothing here imports torch, so ``curate --help`` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from curate_captioner.rewrite import PromptRewrite

FORMAT_VERSION = 1
CONFIG_FILE = "captioner.json"
WEIGHTS_FILE = "model.safetensors"
DECODER_CONFIG_FILE = "decoder_config.json"

PREFIX_LENGTH = 40  # visual prefix tokens (Altogether)
MAX_PROMPT_TOKENS = 128  # alt-text prompt is truncated to this many tokens
MAX_NEW_TOKENS = 192
TEMPERATURE = 0.2
TOP_P = 0.7
EMPTY_PROMPT_RATE = 0.5  # share of training examples whose alt-text prompt is left empty
ALT_TEXT_SEPARATOR = "; "  # an image's alt-texts are joined with this into one prompt

# Special tokens of captioner tokenizers. The caption starts after CAPTION, so the decoder knows
# where the (left-padded, possibly empty) prompt ends; EOS ends it.
PAD, BOS, EOS, UNK, CAPTION = "<pad>", "<s>", "</s>", "<unk>", "<caption>"

# The captioner shipped in package data for the world, and the file that records how it was trained.
PACKAGE_DIR = Path(__file__).resolve().parent
WORLD_MODEL_DIR = PACKAGE_DIR / "world_model"
TRAINING_DIR = PACKAGE_DIR / "training"
WORLD_MODEL_NAME = "world"  # `model: world` in a spec means WORLD_MODEL_DIR


class CaptionerConfig(BaseModel):
    """Architecture of the parts that are not the encoder's or the decoder's own config."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use, not at `curate --help`

    # The bounds are far above any real captioner's (Altogether: 40 prefix tokens, a mapper a few
    # hundred wide) and keep a hostile captioner.json from sizing a terabyte mapper (modelfiles.py).
    format_version: int = FORMAT_VERSION
    prefix_length: int = Field(PREFIX_LENGTH, gt=0, le=1024)
    max_prompt_tokens: int = Field(MAX_PROMPT_TOKENS, ge=0, le=32768)
    # "pooled": the CLIP image embedding only, as Altogether/ClipCap. "pooled+tokens": the mapping
    # transformer also attends to the tower's patch tokens, for small towers whose pooled vector
    # cannot hold every object of a scene.
    features: Literal["pooled", "pooled+tokens"] = "pooled"
    # Patch tokens are average-pooled to at most this many (a square grid) before the mapper.
    max_patch_tokens: int = Field(16, gt=0, le=65536)
    mapper_width: int = Field(256, gt=0, le=16384)
    mapper_layers: int = Field(2, ge=0, le=64)
    mapper_heads: int = Field(4, gt=0, le=1024)
    # Decoding default: added to the logits of the alt-text's own tokens (generate.prompt_bias).
    # 0 for a decoder that uses its prompt well; the world captioner takes 2 (TRAINING.md).
    copy_bias: float = Field(0.0, ge=0.0, le=20.0)
    # Rewrites of the prompt before tokenizing, in order (rewrite.py): "file_names" reads
    # ``zorblax-tower-logo.jpg`` as its words, "fold_shouting" reads ``ZORBLAX TOWER`` as Zorblax
    # Tower, the tokens a tokenizer learnt on ordinary text knows. Training and decoding both read
    # prompts through them; none unless a model names them.
    prompt_rewrites: list[PromptRewrite] = Field(default_factory=list)
    name: str = "captioner"  # written to the caption_model column with the weights' digest


# Bounds on a training stage, so a train_captioner step in a spec from someone else cannot pass
# validation and then train without end or ask for a batch no machine holds (the README's longest
# stage: 50,000 steps).
MAX_TRAIN_STEPS = 10_000_000
MAX_TRAIN_BATCH = 65_536


class TrainConfig(BaseModel):
    """One training stage's hyper-parameters: the defaults of `curate captioner train` and of the
    ``train_captioner`` step are read from here."""
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use, not at `curate --help`

    stage: Literal[1, 2] = 2
    steps: int = Field(1000, gt=0, le=MAX_TRAIN_STEPS)
    batch_size: int = Field(64, gt=0, le=MAX_TRAIN_BATCH)
    lr: float = Field(1e-3, gt=0, allow_inf_nan=False)
    warmup: int = Field(100, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.01, ge=0, allow_inf_nan=False)
    grad_clip: float = Field(1.0, gt=0)
    empty_prompt_rate: float = Field(EMPTY_PROMPT_RATE, ge=0, le=1)
    seed: int = 0
    log_every: int = Field(25, gt=0)
    checkpoint_every: int = Field(250, gt=0)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    train_encoder: bool = False
    encoder_lr: float | None = Field(None, gt=0, allow_inf_nan=False)  # None: lr
    # Share of examples trained without their image (features zeroed), so the captioner also models
    # captions from the alt-text alone: what classifier-free guidance on the image needs (guidance.py).
    image_dropout: float = Field(0.0, ge=0, lt=1)


def defaults(model: type[BaseModel]) -> dict[str, object]:
    """Each field's default, by name (the CLI and the step take theirs from the config models)."""
    return {name: field.default for name, field in model.model_fields.items()}


def resolve_model_path(model: str) -> Path:
    """``world`` → the shipped world captioner; anything else must be a local directory.

    curate never downloads a model: a hub id ("facebook/opt-1.3b") is an error saying so.
    """
    from curate_captioner.errors import CaptionerError

    path = WORLD_MODEL_DIR if model == WORLD_MODEL_NAME else Path(model).expanduser()
    if path.is_dir() and (path / CONFIG_FILE).exists():
        return path
    if path.is_dir():
        raise CaptionerError(
            f"{path} is a directory but not a captioner (no {CONFIG_FILE})",
            "train one with `curate captioner train`, or point at a directory it wrote",
        )
    looks_like_hub_id = "/" in model and not model.startswith((".", "/", "~")) and not path.exists()
    hint = (
        "curate runs offline and never downloads models from a hub; download the model yourself "
        "and pass its local directory" if looks_like_hub_id
        else f"pass a captioner directory, or '{WORLD_MODEL_NAME}' for the shipped world captioner"
    )
    raise CaptionerError(f"captioner model '{model}' is not a local directory", hint)


def require_local_directory(path: str | Path, what: str) -> Path:
    """``path`` as a directory, or an error saying that curate never downloads from a hub."""
    from curate_captioner.errors import CaptionerError

    where = Path(path).expanduser()
    if not where.is_dir():
        raise CaptionerError(
            f"{what} '{path}' is not a local directory",
            "curate runs offline and never downloads models from a hub; download the model and pass its directory",
        )
    return where


# What transformers reads a tokenizer's vocabulary from: a tokenizers serialization, a
# sentencepiece/tiktoken model, or a BPE/WordPiece vocabulary file.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt", "tiktoken.model")
TOKENIZER_HINT = ("a pretrained decoder needs the tokenizer it was trained with in the same directory "
                  f"(one of {', '.join(TOKENIZER_FILES)}); save it there with tokenizer.save_pretrained(DIR)")


def require_tokenizer_files(where: Path) -> None:
    """Without its vocabulary a decoder folder still loads (transformers makes a tokenizer of the
    special tokens alone), and the captioner would train on an empty vocabulary: refuse it."""
    if not any((where / name).is_file() for name in TOKENIZER_FILES):
        from curate_captioner.errors import RefusedFile

        raise RefusedFile(f"decoder directory {where} has no tokenizer files", TOKENIZER_HINT)
