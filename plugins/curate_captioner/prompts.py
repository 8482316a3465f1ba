"""Decoder inputs, as Altogether lays them out: [visual prefix] [prompt] [target].

    column:   0 … P-1      P … P+Lp-1                     P+Lp …
    content:  prefix       pad … pad  alt-text tokens      <caption> target … </s>  pad …
    mask:     1 … 1        0 … 0      1 … 1                1         1 …      1    0 …
    labels:   -100         -100                            -100      target … </s> -100

The prompt is truncated to ``max_prompt_tokens`` (its text first to :func:`prompt_chars`) and left
padded, so every row's prompt ends in the same column and the caption of every row starts in the
same column: a batch is decoded in lockstep.
Position ids count only unmasked columns, so a padded row computes exactly what it would alone.
Loss is on the target tokens and the closing ``</s>`` only. With ``targets=None`` (inference) the
target segment is just ``<caption>``.

Pure functions of token ids, tested with hypothesis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

IGNORE = -100  # label of columns without loss (the value torch's cross entropy ignores)
# A prompt is read up to this many characters per prompt token (65 536 at least) before it is
# rewritten and tokenized: far past where its first max_prompt_tokens tokens end in any natural
# text, and a 10 MB alt-text no longer takes 25 s a row.
PROMPT_CHARS_PER_TOKEN = 32
MIN_PROMPT_CHARS = 1 << 16


def prompt_chars(max_prompt_tokens: int) -> int:
    """How much of an alt-text a prompt of ``max_prompt_tokens`` tokens is made of, at most."""
    return max(MIN_PROMPT_CHARS, PROMPT_CHARS_PER_TOKEN * max_prompt_tokens)


@dataclass
class PromptBatch:
    text_ids: torch.Tensor  # (B, Lp + Lt) token ids after the prefix; pads are pad_id
    attention_mask: torch.Tensor  # (B, P + Lp + Lt), 1 where a row has content
    position_ids: torch.Tensor  # (B, P + Lp + Lt)
    labels: torch.Tensor | None  # (B, P + Lp + Lt) or None at inference
    prefix_length: int
    prompt_length: int  # Lp: columns of the (left-padded) prompt
    # Rows whose prompt was cut: more than max_prompt_tokens tokens (Captioner.batch adds those whose
    # text was longer than prompt_chars); what a step reports (curate_captioner.cuts).
    cut: list[bool] = field(default_factory=list)

    @property
    def target_start(self) -> int:
        """Column of ``<caption>``: the same in every row."""
        return self.prefix_length + self.prompt_length


def truncate_prompt(ids: list[int], max_prompt_tokens: int) -> list[int]:
    """Keep the start of the alt-text: web alt-texts put the subject first."""
    return list(ids[:max_prompt_tokens])


def build_batch(
    prompts: list[list[int]],
    targets: list[list[int]] | None,
    *,
    prefix_length: int,
    max_prompt_tokens: int,
    pad_id: int,
    caption_id: int,
    eos_id: int,
) -> PromptBatch:
    import torch

    rows = len(prompts)
    if targets is not None and len(targets) != rows:
        raise ValueError(f"{rows} prompts but {len(targets)} targets")
    cut = [len(p) > max_prompt_tokens for p in prompts]
    prompts = [truncate_prompt(p, max_prompt_tokens) for p in prompts]
    prompt_length = max((len(p) for p in prompts), default=0)
    segments = [[caption_id, *t, eos_id] for t in targets] if targets is not None else [[caption_id]] * rows
    target_length = max((len(s) for s in segments), default=1)
    width = prompt_length + target_length

    text_ids = torch.full((rows, width), pad_id, dtype=torch.long)
    text_mask = torch.zeros((rows, width), dtype=torch.long)
    labels = torch.full((rows, prefix_length + width), IGNORE, dtype=torch.long) if targets is not None else None
    for row, (prompt, segment) in enumerate(zip(prompts, segments, strict=True)):
        start = prompt_length - len(prompt)
        if prompt:
            text_ids[row, start:prompt_length] = torch.tensor(prompt, dtype=torch.long)
            text_mask[row, start:prompt_length] = 1
        end = prompt_length + len(segment)
        text_ids[row, prompt_length:end] = torch.tensor(segment, dtype=torch.long)
        text_mask[row, prompt_length:end] = 1
        if labels is not None:
            # <caption> predicts the first target token; the label sits on the token predicted.
            labels[row, prefix_length + prompt_length + 1:prefix_length + end] = torch.tensor(segment[1:], dtype=torch.long)
    mask = torch.cat([torch.ones((rows, prefix_length), dtype=torch.long), text_mask], dim=1)
    return PromptBatch(text_ids, mask, positions(mask), labels, prefix_length, prompt_length, cut)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position of each column among its row's unmasked columns (masked columns get 0)."""
    return (mask.cumsum(dim=1) - 1).clamp(min=0) * mask
