"""Classifier-free guidance at decode time, for a captioner trained with conditioning dropout.

A captioner that sometimes trained without its image (``image_dropout``: the encoder's features
replaced by zeros, :func:`null_features`) and without its alt-text (the empty prompt, half the time
in every stage) also models captions without them. Guidance sharpens the caption toward what a
condition adds, per token:

    logits = c + (g_image - 1) * (c - no_image) + (g_alt - 1) * (c - no_alt)

where ``c`` is the fully conditioned row; a scale of 1 leaves that condition out (and its row is
not computed). The unconditional rows ride in the same batch and the same KV cache as the
conditional ones: :func:`expand` stacks them below, :func:`combine` folds them back. Everything
guidance-specific in the decode loop is these two calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from curate_captioner.model import Captioner


@dataclass(frozen=True)
class Guidance:
    image: float = 1.0  # scale on the image; 1 = off
    alt_text: float = 1.0  # scale on the alt-text; 1 = off

    @property
    def active(self) -> bool:
        return self.image != 1.0 or self.alt_text != 1.0

    @property
    def copies(self) -> int:
        """Rows per caption in the decode batch: the conditional one and one per active scale."""
        return 1 + (self.image != 1.0) + (self.alt_text != 1.0)


def null_features(captioner: Captioner, rows: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The encoder features of 'no image': zeros (one zero patch token: attention over identical
    tokens gives the same output for any count of them)."""
    import torch

    device, dtype = captioner.device, next(captioner.mapper.parameters()).dtype
    pooled = torch.zeros((rows, captioner.mapper.project.in_features), device=device, dtype=dtype)
    tokens = None
    if captioner.mapper.tokens is not None:
        tokens = torch.zeros((rows, 1, captioner.mapper.tokens.in_features), device=device, dtype=dtype)
    return pooled, tokens


def expand(captioner: Captioner, prefix: torch.Tensor, prompts: list[str], guidance: Guidance) -> tuple[torch.Tensor, list[str]]:
    """The decode batch: the conditional rows, then the image-free ones, then the alt-text-free ones."""
    import torch

    rows = prefix.shape[0]
    prefixes, texts = [prefix], list(prompts)
    if guidance.image != 1.0:
        prefixes.append(captioner.prefix(*null_features(captioner, rows)).to(prefix.dtype))
        texts += prompts
    if guidance.alt_text != 1.0:
        prefixes.append(prefix)
        texts += [""] * rows
    return torch.cat(prefixes), texts


def combine(logits: torch.Tensor, rows: int, guidance: Guidance) -> torch.Tensor:
    """Fold the stacked rows of :func:`expand` back into one guided row per caption."""
    if not guidance.active:
        return logits
    import torch

    dtype = torch.promote_types(logits.dtype, torch.float32)  # bf16 logits are combined in fp32
    conditional = logits[:rows].to(dtype)
    guided, part = conditional.clone(), 1
    for scale in (guidance.image, guidance.alt_text):
        if scale != 1.0:
            guided += (scale - 1.0) * (conditional - logits[part * rows : (part + 1) * rows].to(dtype))
            part += 1
    return guided
