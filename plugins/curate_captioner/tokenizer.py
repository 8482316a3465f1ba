"""A small byte-level BPE tokenizer trained with ``tokenizers``, wrapped as a transformers
``PreTrainedTokenizerFast`` so a captioner's decoder and tokenizer load the same way whatever
their size. Byte-level: any alt-text (file names, emoji, scripts) tokenizes without <unk>.

Captioners built on a pretrained decoder use that decoder's own tokenizer instead; this module
then only adds the special tokens the captioner needs (:func:`add_captioner_tokens`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from curate_captioner.config import BOS, CAPTION, EOS, PAD, UNK

SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, CAPTION)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024, min_frequency: int = 2) -> Any:
    """Train a byte-level BPE on ``texts``; returns a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return wrap(tokenizer)


def wrap(tokenizer: Any) -> Any:
    from transformers import PreTrainedTokenizerFast

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
        additional_special_tokens=[CAPTION], padding_side="left", clean_up_tokenization_spaces=False,
    )
    return wrapped


def add_captioner_tokens(tokenizer: Any) -> int:
    """Give a pretrained decoder's tokenizer the tokens the captioner needs (a pad token and the
    caption marker). Returns how many were added, so the caller can resize the embeddings."""
    added = 0
    if tokenizer.pad_token is None:
        added += tokenizer.add_special_tokens({"pad_token": PAD})
    if tokenizer.eos_token is None:
        added += tokenizer.add_special_tokens({"eos_token": EOS})
    if CAPTION not in tokenizer.get_vocab():
        added += tokenizer.add_special_tokens({"additional_special_tokens": [CAPTION]})
    tokenizer.padding_side = "left"
    return added


def encode(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens (the prompt builder adds its own)."""
    if not texts:
        return []
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def caption_token_id(tokenizer: Any) -> int:
    return int(tokenizer.convert_tokens_to_ids(CAPTION))
