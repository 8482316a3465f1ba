"""Preference losses for the third training stage: DPO, and its multi-faceted variant (MCM-DPO).

DPO (Rafailov et al. 2023) trains a policy from pairs (chosen, rejected) against a frozen reference
(here the stage-2 SFT captioner). Each side is a caption under a conditioning (image, alt-text);
the implicit reward of a side is ``beta * (log pi(side) - log ref(side))`` and a pair's loss is

    -log sigmoid(reward(chosen) - reward(rejected))

which is log 2 while the policy is the reference. A pair may differ in its caption (textual
pairs) or in its conditioning with the same caption (visual pairs: a near-miss image; cross-modal
pairs: another image's alt-text), as mDPO does for images.

With ``lengths`` (each side's count of target tokens, its caption and ``</s>``) a side's
log-probabilities are per-token means instead of sums (length-normalised DPO, as in SimPO and
LN-DPO): a pair of captions of different lengths then compares per-token fit, and one changed
word of a long caption moves its side's log-ratio by 1/length of what it does summed.

MCM-DPO keeps one loss per preference dimension (textual, visual, cross_modal) and sums them with
weights: ``sum_d w_d * mean_{pairs of d} loss / sum_d w_d`` over the dimensions present in a batch,
so one weight is one dimension's share, whatever the batch holds of each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from curate_captioner.model import Captioner
    from curate_captioner.prompts import PromptBatch

DIMENSIONS = ("textual", "visual", "cross_modal")
LOG_2 = math.log(2.0)


def parse_weights(text: str) -> dict[str, float]:
    """``textual=1,visual=0.5`` → {"textual": 1.0, "visual": 0.5, "cross_modal": 0.0}."""
    from curate_captioner.errors import CaptionerError

    weights = dict.fromkeys(DIMENSIONS, 0.0)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in weights:
            raise CaptionerError(f"unknown preference dimension {name!r} in {text!r}", f"use {', '.join(DIMENSIONS)}")
        try:
            weights[name] = float(value)
        except ValueError:
            raise CaptionerError(f"weight of {name} in {text!r} is not a number", "e.g. textual=1,visual=0.5") from None
    return weights


def dpo_losses(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
               reference_rejected: torch.Tensor, beta: float, lengths: tuple[torch.Tensor, torch.Tensor] | None = None,
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO loss, and the chosen and rejected implicit rewards (detached). ``lengths``
    (chosen, rejected target token counts) divides each side's log-ratio by its length."""
    import torch.nn.functional as F

    chosen = policy_chosen - reference_chosen
    rejected = policy_rejected - reference_rejected
    if lengths is not None:
        chosen = chosen / lengths[0].clamp(min=1)
        rejected = rejected / lengths[1].clamp(min=1)
    losses = -F.logsigmoid(beta * (chosen - rejected))
    return losses, beta * chosen.detach(), beta * rejected.detach()


def mcm_dpo_loss(losses: torch.Tensor, dimensions: Sequence[str], weights: Mapping[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted sum of each dimension's mean pair loss (normalized by the weights present),
    and each present dimension's mean loss. Plain DPO is every weight equal to the pair counts'
    share; with one dimension both are the same."""
    import torch

    total = losses.new_zeros(())
    weight_sum = 0.0
    per_dimension: dict[str, float] = {}
    for name in dict.fromkeys(dimensions):
        weight = float(weights.get(name, 0.0))
        picked = torch.tensor([d == name for d in dimensions], device=losses.device)
        mean = losses[picked].mean()
        per_dimension[name] = float(mean.detach())
        if weight > 0:
            total = total + weight * mean
            weight_sum += weight
    if weight_sum == 0:
        return losses.sum() * 0.0, per_dimension
    return total / weight_sum, per_dimension


def sequence_logps(captioner: Captioner, pooled: torch.Tensor, tokens: torch.Tensor | None, batch: PromptBatch) -> torch.Tensor:
    """Sum of the log-probabilities of each row's target tokens (its caption and ``</s>``)."""
    import torch

    device = captioner.device
    embeds = captioner.embeds(captioner.prefix(pooled.to(device), None if tokens is None else tokens.to(device)), batch)
    out = captioner.decoder(inputs_embeds=embeds, attention_mask=batch.attention_mask.to(device),
                            position_ids=batch.position_ids.to(device), use_cache=False)
    assert batch.labels is not None
    logits = out.logits[:, :-1].float()
    labels = batch.labels[:, 1:].to(device)
    keep = labels != -100
    picked = torch.log_softmax(logits, dim=-1).gather(2, labels.clamp(min=0).unsqueeze(2)).squeeze(2)
    return (picked * keep).sum(dim=1)
