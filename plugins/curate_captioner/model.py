"""The captioner: frozen open_clip encoder → mapping network → visual prefix → causal LM decoder.

The mapping network follows Altogether/ClipCap: a linear layer turns the image embedding into
``prefix_length`` slots, learned constants of the same length are appended, a small transformer
mixes them, and its outputs at the constants' columns, projected to the decoder's width, are the
visual prefix. With ``features: pooled+tokens`` the transformer also sees the tower's patch tokens.

A captioner is saved and loaded as one directory (see :mod:`curate_captioner.config`); the world
captioner and an OPT-1.3B one go through the same :meth:`Captioner.save` / :meth:`Captioner.load`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from curate_captioner.config import (
    CONFIG_FILE,
    DECODER_CONFIG_FILE,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    CaptionerConfig,
    TOKENIZER_HINT,
    require_local_directory,
    require_tokenizer_files,
    resolve_model_path,
)
from curate_captioner.encoder import build_tower, encode, preprocess, tower_width
from curate_captioner.errors import CaptionerError, RefusedFile
from curate_captioner.modelfiles import REWRITE_HINT, ModelDirectoryError, check_captioner_directory
from curate_captioner.prompts import PromptBatch, build_batch, prompt_chars
from curate_captioner.rewrite import rewrite_prompt
from curate_captioner.tokenizer import caption_token_id
from curate_captioner.tokenizer import encode as encode_texts


class Mapper(nn.Module):
    """Image embedding → ``prefix_length`` decoder embeddings.

    The projected slots and the learned constants go through a small transformer; its outputs at
    the constants' columns are the prefix. With patch tokens, each layer also cross-attends to
    them (the tokens themselves are not transformed, which keeps the mapper cheap).
    """

    def __init__(self, embed_dim: int, token_width: int | None, out_dim: int, config: CaptionerConfig):
        super().__init__()
        width, slots = config.mapper_width, config.prefix_length
        self.slots, self.width = slots, width
        self.project = nn.Linear(embed_dim, slots * width)
        self.constants = nn.Parameter(torch.randn(slots, width) * 0.02)
        self.tokens = nn.Linear(token_width, width) if token_width is not None else None
        options = {"dim_feedforward": 4 * width, "dropout": 0.0, "activation": "gelu", "batch_first": True,
                   "norm_first": True}
        self.transformer: nn.Module
        if config.mapper_layers == 0:
            self.transformer = nn.Identity()
        elif self.tokens is not None:
            self.transformer = nn.TransformerDecoder(nn.TransformerDecoderLayer(width, config.mapper_heads, **options),
                                                     config.mapper_layers)
        else:
            self.transformer = nn.TransformerEncoder(nn.TransformerEncoderLayer(width, config.mapper_heads, **options),
                                                     config.mapper_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, out_dim)

    def forward(self, pooled: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        rows = pooled.shape[0]
        queries = torch.cat([self.project(pooled).view(rows, self.slots, self.width),
                             self.constants.unsqueeze(0).expand(rows, -1, -1)], dim=1)
        if self.tokens is not None:
            if tokens is None:
                raise CaptionerError("this captioner's mapper needs the encoder's patch tokens")
            memory = self.tokens(tokens)
            mixed = queries if isinstance(self.transformer, nn.Identity) else self.transformer(queries, memory)
        else:
            mixed = self.transformer(queries)
        return self.out(self.norm(mixed[:, -self.slots:]))


class Captioner(nn.Module):
    def __init__(self, encoder: nn.Module, encoder_config: dict[str, Any], decoder: nn.Module, tokenizer: Any,
                 config: CaptionerConfig, training: dict[str, Any] | None = None):
        super().__init__()
        self.config = config
        self.encoder_config = encoder_config
        self.encoder = encoder.eval().requires_grad_(False)
        self.decoder = decoder
        self.tokenizer = tokenizer
        self.training_facts = dict(training or {})
        # While a step counts the prompts it cut (curate_captioner.cuts): each prompt text the
        # captioner read, and whether it was cut. None: not counting.
        self.prompt_cuts: dict[str, bool] | None = None
        token_width = tower_width(encoder) if config.features == "pooled+tokens" else None
        if config.features == "pooled+tokens" and token_width is None:
            raise CaptionerError("features 'pooled+tokens' needs a ViT encoder", "use features: pooled")
        self.mapper = Mapper(encoder_config["embed_dim"], token_width, decoder.config.hidden_size, config)
        self.caption_id = caption_token_id(tokenizer)
        if self.caption_id is None or self.caption_id == tokenizer.unk_token_id:
            raise CaptionerError("the tokenizer has no <caption> token", "build it with curate_captioner.tokenizer")

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def create(cls, encoder: nn.Module, encoder_config: dict[str, Any], decoder: nn.Module, tokenizer: Any,
               config: CaptionerConfig | None = None) -> Captioner:
        """A new captioner; the decoder's embeddings grow if the tokenizer gained tokens."""
        if len(tokenizer) > decoder.get_input_embeddings().num_embeddings:
            decoder.resize_token_embeddings(len(tokenizer))
        return cls(encoder, encoder_config, decoder, tokenizer, config or CaptionerConfig())

    def set_encoder_image_size(self, image_size: int) -> None:
        """Run the encoder at ``image_size`` from now on (see :func:`encoder.resize_tower`)."""
        from curate_captioner.encoder import resize_tower

        device = self.device
        tower, self.encoder_config = resize_tower(self.encoder, self.encoder_config, image_size)
        self.encoder = tower.to(device).eval().requires_grad_(False)

    @property
    def with_tokens(self) -> bool:
        return self.config.features == "pooled+tokens"

    @property
    def device(self) -> torch.device:
        return next(self.mapper.parameters()).device

    # -- save / load ----------------------------------------------------------------------------
    def save(self, directory: str | Path, training: dict[str, Any] | None = None) -> Path:
        from curate_captioner.weightsfile import save_module

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        if training is not None:
            self.training_facts = dict(training)
        meta = {
            "format_version": FORMAT_VERSION,
            "captioner": self.config.model_dump(mode="json"),
            "encoder": self.encoder_config,
            "decoder_model_type": self.decoder.config.model_type,
            "training": self.training_facts,
        }
        (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        (out / DECODER_CONFIG_FILE).write_text(self.decoder.config.to_json_string(use_diff=False))
        self.tokenizer.save_pretrained(str(out))
        # As safetensors' save_model (tied weights once), with the same bytes every time.
        save_module(self, out / WEIGHTS_FILE, metadata={"format": "pt"})
        return out

    @classmethod
    def load(cls, model: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> Captioner:
        """Load a captioner directory (or ``world``); never touches a network, never runs a file's code.

        The directory is checked first (:func:`curate_captioner.modelfiles.check_captioner_directory`:
        configs, sizes and the weights' header, as at plan time); whatever still fails to load is a
        :class:`ModelDirectoryError` naming the directory and the cause, never an internal error.
        """
        path = resolve_model_path(str(model))
        check_captioner_directory(path)
        try:
            captioner = cls._build(path)
        except ModelDirectoryError:
            raise
        except CaptionerError as error:
            raise ModelDirectoryError(f"captioner directory {path}: {error.message}", error.hint) from None
        except Exception as error:  # noqa: BLE001 - any loader failure is this directory's, said as such
            cause = " ".join(str(error).split())  # a state-dict error says what disagrees on its second line
            cause = cause if len(cause) <= 400 else cause[:400] + "…"
            raise ModelDirectoryError(f"captioner directory {path} cannot be loaded: {type(error).__name__}: {cause}",
                                      "its files disagree with each other or with this transformers/open_clip; "
                                      "save it again with Captioner.save, or point at another directory") from None
        try:
            return captioner.to(device=device, dtype=dtype) if dtype is not None else captioner.to(device)
        except torch.OutOfMemoryError as error:
            parameters = sum(p.numel() for p in captioner.parameters())
            raise CaptionerError(f"captioner {path} ({parameters:,} parameters) does not fit on {device}: "
                                 f"{str(error).splitlines()[0]}", "free the device, use bf16, or run on another device") from None

    @classmethod
    def _build(cls, path: Path) -> Captioner:
        from safetensors.torch import load_model
        from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

        meta = json.loads((path / CONFIG_FILE).read_text())
        config = CaptionerConfig(**meta["captioner"])
        decoder_dict = json.loads((path / DECODER_CONFIG_FILE).read_text())
        # A directory's own code (auto_map) and hub kernels (attn_implementation) are never used.
        for key in ("auto_map", "attn_implementation", "_attn_implementation", "trust_remote_code"):
            decoder_dict.pop(key, None)
        model_type = decoder_dict.pop("model_type", meta["decoder_model_type"])
        decoder_config = AutoConfig.for_model(model_type, **decoder_dict)
        decoder = AutoModelForCausalLM.from_config(decoder_config, trust_remote_code=False)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
        captioner = cls(build_tower(meta["encoder"]), meta["encoder"], decoder, tokenizer, config, meta.get("training"))
        missing, unexpected = load_model(captioner, str(path / WEIGHTS_FILE), strict=False)
        if missing or unexpected:
            said = [f"{len(keys)} {what} (first: {', '.join(sorted(keys)[:3])})"
                    for keys, what in ((missing, "missing"), (unexpected, "unexpected")) if keys]
            raise ModelDirectoryError(f"captioner directory {path}: {WEIGHTS_FILE} does not fit its configs: "
                                 f"{'; '.join(said)} weights", REWRITE_HINT)
        captioner.decoder.tie_weights()
        captioner.name = f"{config.name}@{weights_digest(path)}"
        return captioner.eval()

    name: str = "captioner"

    # -- forward pieces -------------------------------------------------------------------------
    def image_features(self, images: list[Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frozen encoder features of PIL images (pooled, and patch tokens when the mapper uses them)."""
        pixels = preprocess(images, self.encoder_config).to(self.device)
        with torch.no_grad():
            return self.encode_pixels(pixels)

    def encode_pixels(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The encoder on preprocessed pixels (with gradients when the encoder trains)."""
        pooled, tokens = encode(self.encoder, pixels.to(dtype=self.encoder_dtype), self.with_tokens)
        return pooled, None if tokens is None else pool_tokens(tokens, self.config.max_patch_tokens)

    @property
    def encoder_dtype(self) -> torch.dtype:
        return next(self.encoder.parameters()).dtype

    def prefix(self, pooled: torch.Tensor, tokens: torch.Tensor | None) -> torch.Tensor:
        dtype = next(self.mapper.parameters()).dtype
        return self.mapper(pooled.to(dtype), None if tokens is None else tokens.to(dtype))

    def batch(self, prompts: list[str], targets: list[str] | None = None) -> PromptBatch:
        tokenizer = self.tokenizer
        length = prompt_chars(self.config.max_prompt_tokens)
        read = [rewrite_prompt(p[:length], self.config.prompt_rewrites) for p in prompts]
        batch = build_batch(
            encode_texts(tokenizer, read),
            None if targets is None else encode_texts(tokenizer, targets),
            prefix_length=self.config.prefix_length,
            max_prompt_tokens=self.config.max_prompt_tokens,
            pad_id=tokenizer.pad_token_id,
            caption_id=self.caption_id,
            eos_id=tokenizer.eos_token_id,
        )
        batch.cut = [cut or len(prompt) > length for prompt, cut in zip(prompts, batch.cut, strict=True)]
        if self.prompt_cuts is not None:
            self.prompt_cuts.update(zip(prompts, batch.cut, strict=True))
        return batch

    def embeds(self, prefix: torch.Tensor, batch: PromptBatch) -> torch.Tensor:
        text = self.decoder.get_input_embeddings()(batch.text_ids.to(prefix.device))
        return torch.cat([prefix.to(text.dtype), text], dim=1)

    def loss(self, pooled: torch.Tensor, tokens: torch.Tensor | None, batch: PromptBatch) -> torch.Tensor:
        """Mean cross entropy over target tokens (the prefix and prompt carry no loss)."""
        device = self.device
        embeds = self.embeds(self.prefix(pooled.to(device), None if tokens is None else tokens.to(device)), batch)
        out = self.decoder(inputs_embeds=embeds, attention_mask=batch.attention_mask.to(device),
                           position_ids=batch.position_ids.to(device), use_cache=False)
        logits = out.logits[:, :-1].float()
        labels = batch.labels[:, 1:].to(device)
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def pool_tokens(tokens: torch.Tensor, limit: int) -> torch.Tensor:
    """Average-pool a square grid of patch tokens (N, side², C) down to at most ``limit`` tokens."""
    rows, count, width = tokens.shape
    side = int(round(count**0.5))
    if count <= limit or side * side != count:
        return tokens
    target = int(limit**0.5)
    grid = tokens.transpose(1, 2).reshape(rows, width, side, side)
    pooled = nn.functional.adaptive_avg_pool2d(grid, target)
    return pooled.reshape(rows, width, target * target).transpose(1, 2)


def weights_digest(path: Path) -> str:
    """Short digest of a captioner's weights file, recorded with every caption it writes."""
    from curate.digests import file_digest

    return file_digest(path / WEIGHTS_FILE)[:12]


def tiny_decoder(vocab_size: int, *, hidden: int = 192, layers: int = 4, heads: int = 4,
                 kind: str = "llama", max_positions: int = 512) -> nn.Module:
    """A small causal LM built from a local config (never a hub download): the world decoder,
    and the decoders tests use for each architecture family."""
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, OPTConfig

    if kind == "llama":
        config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 8 // 3 // 8 * 8,
                             num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                             max_position_embeddings=max_positions, tie_word_embeddings=True,
                             bos_token_id=1, eos_token_id=2, pad_token_id=0)
    elif kind == "gpt2":
        config = GPT2Config(vocab_size=vocab_size, n_embd=hidden, n_layer=layers, n_head=heads, n_positions=max_positions,
                            bos_token_id=1, eos_token_id=2, pad_token_id=0)
    elif kind == "opt":
        config = OPTConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                           ffn_dim=hidden * 4, max_position_embeddings=max_positions, word_embed_proj_dim=hidden,
                           bos_token_id=1, eos_token_id=2, pad_token_id=0)
    else:
        raise CaptionerError(f"unknown tiny decoder kind {kind!r}", "use llama, gpt2 or opt")
    return AutoModelForCausalLM.from_config(config)


def load_pretrained_decoder(path: str | Path) -> tuple[nn.Module, Any]:
    """A pretrained decoder and its tokenizer from a *local* directory (OPT, Llama, …)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curate_captioner.tokenizer import add_captioner_tokens

    where = require_local_directory(path, "decoder")
    require_tokenizer_files(where)
    decoder = AutoModelForCausalLM.from_pretrained(str(where), local_files_only=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(where), local_files_only=True)
    except (OSError, ValueError) as error:
        raise RefusedFile(f"decoder directory {where}: its tokenizer cannot be read ({str(error).splitlines()[0]})",
                          TOKENIZER_HINT) from None
    if tokenizer.vocab_size < 1:
        raise RefusedFile(f"decoder directory {where}: its tokenizer has an empty vocabulary", TOKENIZER_HINT)
    add_captioner_tokens(tokenizer)
    return decoder, tokenizer
