"""The CLIP text tower run on each text's tokens, not on its padding.

open_clip's tokenizer pads every text to the model's context (77 tokens for the OpenAI-style
models, 32 for the world CLIP), and ``encode_text`` runs the whole context through every layer.
An alt-text is ~15-30 tokens. The text tower is causal and pools at the end-of-text token, so
the positions after it change nothing the pooled feature sees: running a text on its first
``n`` positions (``n`` ≥ its end-of-text position + 1) gives the same feature, in a fraction of the
work (a 77-token context: ~3-4x fewer FLOPs for a world alt-text).

Each text is run on its length rounded up to a multiple of :data:`BUCKET`, a function of the text
alone: its feature does not depend on which texts share its batch. Where the model is not a plain
open_clip ``CLIP`` with a causal mask and end-of-text pooling (a Hugging Face text tower, CoCa,
``pool_type: last``), or where a first probe disagrees with ``encode_text`` (an open_clip version
whose ``encode_text`` does more than this mirrors), every text goes through ``encode_text`` as
before.
"""

from __future__ import annotations

import logging
from typing import Any

BUCKET = 8  # lengths are rounded up to a multiple of this (at most the context)
PROBE_COSINE = 0.999  # the first batch's trimmed features must agree with encode_text's this well
LOG = logging.getLogger(__name__)


def trim_problem(model: Any) -> str | None:
    """Why ``model``'s text tower cannot be run on trimmed tokens, or None where it can."""
    import torch
    from open_clip.model import CLIP

    if type(model) is not CLIP:
        return f"{type(model).__name__} is not open_clip's CLIP (its text tower is run whole)"
    pool = getattr(model, "text_pool_type", None)
    if pool not in ("argmax", "eos") or (pool == "eos" and getattr(model, "text_eos_id", None) is None):
        return f"text pooling {pool!r} is not at the end-of-text token"
    mask = getattr(model, "attn_mask", None)
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2 or mask.shape[0] != mask.shape[1]:
        return "the text tower has no causal attention mask"
    context = mask.shape[0]
    causal = torch.ones(context, context, dtype=torch.bool, device=mask.device).triu(1)
    if not (torch.equal(torch.isneginf(mask), causal) and bool((mask[~causal] == 0).all())):
        return "the text tower's attention mask is not causal"
    if model.positional_embedding.shape[0] != context:
        return "the positional embedding does not match the context"
    return None


class TextTower:
    """``encode_text`` of a loaded open_clip model, each text run on its own length (bucketed)."""

    def __init__(self, model: Any):
        self.model = model
        self.problem = trim_problem(model)
        self._probed = False

    @property
    def trims(self) -> bool:
        return self.problem is None

    def __call__(self, ids: Any) -> Any:
        """Token ids (batch × context, on the model's device) → text features, as ``encode_text``
        returns them (not normalized)."""
        if self.problem is not None:
            return self.model.encode_text(ids)
        if not self._probed:
            self._probe(ids)
            if self.problem is not None:
                return self.model.encode_text(ids)
        return self._trimmed(ids)

    def lengths(self, ids: Any) -> Any:
        """Each text's bucketed length: its end-of-text position + 1, rounded up to BUCKET."""
        import torch

        if self.model.text_pool_type == "argmax":  # end-of-text has the largest id (open_clip's rule)
            end = ids.argmax(dim=-1)
        else:
            is_end = ids == self.model.text_eos_id
            end = torch.where(is_end.any(dim=-1), is_end.int().argmax(dim=-1), ids.shape[1] - 1)
        return ((end + BUCKET) // BUCKET * BUCKET).clamp(max=ids.shape[1])

    def _trimmed(self, ids: Any) -> Any:
        import torch

        lengths = self.lengths(ids)
        buckets = torch.unique(lengths).tolist()
        if len(buckets) == 1:
            return self._run(ids[:, :buckets[0]])
        out = None
        for length in buckets:
            rows = (lengths == length).nonzero(as_tuple=True)[0]
            features = self._run(ids[rows, :length])
            if out is None:
                out = features.new_empty((ids.shape[0], features.shape[1]))
            out[rows] = features
        return out

    def _run(self, ids: Any) -> Any:
        """open_clip 3.x ``CLIP.encode_text`` on the first ``ids.shape[1]`` positions."""
        from open_clip.transformer import text_global_pool
        from torch import nn

        model, length = self.model, ids.shape[1]
        cast = model.transformer.get_cast_dtype()
        x = model.token_embedding(ids).to(cast) + model.positional_embedding[:length].to(cast)
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = model.ln_final(x)
        x = text_global_pool(x, ids, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
        if model.text_projection is not None:
            x = model.text_projection(x) if isinstance(model.text_projection, nn.Linear) else x @ model.text_projection
        return x

    def _probe(self, ids: Any) -> None:
        """Compare trimmed and whole features on the first batch's first rows once; on a
        disagreement, fall back to ``encode_text`` for good."""
        import torch

        self._probed = True
        probe = ids[:4]
        whole = torch.nn.functional.normalize(self.model.encode_text(probe).float(), dim=-1)
        trimmed = torch.nn.functional.normalize(self._trimmed(probe).float(), dim=-1)
        cosine = float((whole * trimmed).sum(dim=-1).min())
        if cosine < PROBE_COSINE:
            self.problem = (f"trimmed text features disagree with encode_text (cosine {cosine:.4f}): this "
                            "open_clip's encode_text is not the one mirrored")
            LOG.warning("clip text tower: %s; running every text whole", self.problem)
