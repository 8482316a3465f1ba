"""Batched decoding with a KV cache: every row of a batch advances one token per decoder call.

Rows are laid out by :func:`curate_captioner.prompts.build_batch` so their captions start in the
same column; the prefill runs once over [prefix][prompt][<caption>] and each later step feeds one
token per row against the cache. Finished rows keep feeding padding until the whole batch is done.

Sampling (temperature, nucleus top-p) draws each row's token from the row's own random stream,
seeded by (seed, row key): a row's caption does not depend on which rows share its batch.
``temperature=0`` is greedy decoding.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from curate_captioner.config import MAX_NEW_TOKENS, TEMPERATURE, TOP_P
from curate_captioner.guidance import Guidance, combine, expand

if TYPE_CHECKING:
    from curate_captioner.model import Captioner


def _accepts(module: Any, name: str) -> bool:
    return name in inspect.signature(module.forward).parameters


def pick_tokens(logits: torch.Tensor, temperature: float, top_p: float, uniforms: np.ndarray | None) -> torch.Tensor:
    """Next token per row: argmax, or nucleus sampling by inverse CDF at the row's uniform draw."""
    if temperature <= 0 or uniforms is None:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    cumulative = sorted_probs.cumsum(dim=-1)
    # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
    keep = (cumulative - sorted_probs) < top_p
    sorted_probs = sorted_probs * keep
    cumulative = sorted_probs.cumsum(dim=-1)
    draws = torch.as_tensor(uniforms, dtype=cumulative.dtype, device=cumulative.device).unsqueeze(1)
    chosen = torch.searchsorted(cumulative, draws * cumulative[:, -1:]).clamp(max=cumulative.shape[1] - 1)
    return order.gather(1, chosen).squeeze(1)


def row_streams(seed: int, keys: Sequence[int]) -> list[np.random.Generator]:
    return [np.random.default_rng([seed, int(key) & 0xFFFFFFFFFFFFFFFF]) for key in keys]


@torch.no_grad()
def generate(
    captioner: Captioner,
    prefix: torch.Tensor,
    prompts: list[str],
    *,
    max_new_tokens: int = MAX_NEW_TOKENS,
    temperature: float = TEMPERATURE,
    top_p: float = TOP_P,
    seed: int = 0,
    row_keys: Sequence[int] | None = None,
    copy_bias: float = 0.0,
    guidance: Guidance | None = None,
    static: bool | None = None,
    graphs: bool = True,
    fused: bool = True,
) -> list[list[int]]:
    """Token ids of each row's caption (without <caption> and </s>).

    ``guidance`` (classifier-free, :mod:`curate_captioner.guidance`) decodes each row's
    unconditional twins in the same batch and cache and combines their logits with the row's.

    ``static``: decode against a preallocated KV cache (:mod:`curate_captioner.generate_static`);
    None (the default) does so on CUDA, where ``graphs`` also replays the decode step as a CUDA
    graph, and ``fused`` puts the sampler and the loop's bookkeeping in that graph too (one host
sync per few steps instead of one per token). The captions are the same either way (greedy; sampling draws the same uniforms). Guided
    decoding always takes the dynamic-cache loop (the static path has no twin rows yet).

    ``copy_bias`` is added to the logits of every token of the row's own prompt (its alt-text), at
    every step: a decoder that under-uses its alt-text is nudged to keep its words (names,
    attributes). It cannot make the model say a word the alt-text does not hold."""
    guided = guidance is not None and guidance.active
    if not guided and (static if static is not None else prefix.device.type == "cuda"):
        from curate_captioner.generate_static import generate_static

        return generate_static(captioner, prefix, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                               top_p=top_p, seed=seed, row_keys=row_keys, copy_bias=copy_bias, graphs=graphs,
                               fused=fused)
    from transformers import DynamicCache

    decoder = captioner.decoder
    rows = prefix.shape[0]
    device = prefix.device
    guide = guidance or Guidance()
    if guide.active:  # the unconditional rows go below the conditional ones
        prefix, prompts = expand(captioner, prefix, prompts, guide)
    batch = captioner.batch(prompts)
    mask = batch.attention_mask.to(device)
    positions = batch.position_ids.to(device)
    streams = row_streams(seed, row_keys if row_keys is not None else range(rows)) if temperature > 0 else None
    eos, pad = captioner.tokenizer.eos_token_id, captioner.tokenizer.pad_token_id
    extra = {"logits_to_keep": 1} if _accepts(decoder, "logits_to_keep") else {}
    # transformers 5.24 renamed the KV cache argument and output field from past_key_values to cache
    cache_name = "cache" if _accepts(decoder, "cache") else "past_key_values"
    adjust = logit_adjustment(captioner, batch, pad, copy_bias, rows, device)

    cache = DynamicCache(config=decoder.config)
    out = decoder(inputs_embeds=captioner.embeds(prefix, batch), attention_mask=mask, position_ids=positions,
                  use_cache=True, **{cache_name: cache}, **extra)
    cache = getattr(out, cache_name)
    state = {"mask": mask, "cache": getattr(out, cache_name), "position": positions[:, -1:] + 1}

    def step(tokens: torch.Tensor) -> torch.Tensor:
        mask = state["mask"] = torch.cat([state["mask"], state["mask"].new_ones((state["mask"].shape[0], 1))], dim=1)
        out = decoder(input_ids=tokens.repeat(guide.copies).unsqueeze(1), attention_mask=mask,
                      position_ids=state["position"], use_cache=True, **{cache_name: state["cache"]}, **extra)
        state["cache"] = getattr(out, cache_name)
        state["position"] = state["position"] + 1
        return combine(out.logits[:, -1], rows, guide) + adjust

    return sample_captions(combine(out.logits[:, -1], rows, guide) + adjust, step, streams, temperature, top_p,
                           max_new_tokens, eos, pad)


def logit_adjustment(captioner: Captioner, batch: Any, pad: int, copy_bias: float, rows: int,
                     device: torch.device) -> torch.Tensor:
    """Added to every step's logits: -inf on tokens a caption never contains, and the copy bias
    on the first ``rows`` rows' prompt tokens ((rows, vocab), or (1, vocab) without a bias)."""
    banned = banned_tokens(captioner)
    vocab = captioner.decoder.get_output_embeddings().weight.shape[0]
    adjust = prompt_bias(batch, pad, copy_bias, vocab, banned)[:rows] if copy_bias else torch.zeros((1, vocab))
    adjust[:, banned] = float("-inf")
    return adjust.to(device)


def sample_captions(logits: torch.Tensor, step: Callable[[torch.Tensor], torch.Tensor],
                    streams: list[np.random.Generator] | None, temperature: float, top_p: float,
                    max_new_tokens: int, eos: int, pad: int) -> list[list[int]]:
    """The decoding loop both decoders share: pick a token per row from ``logits``, feed it to
    ``step`` for the next logits, until every row ended or ``max_new_tokens``; finished rows feed
    padding. The token ids of each row's caption."""
    rows, device = logits.shape[0], logits.device
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    generated = torch.full((rows, max_new_tokens), pad, dtype=torch.long, device=device)
    for position in range(max_new_tokens):
        uniforms = np.array([s.random() for s in streams]) if streams is not None else None
        tokens = pick_tokens(logits, temperature, top_p, uniforms)
        tokens = torch.where(finished, torch.full_like(tokens, pad), tokens)
        generated[:, position] = tokens
        finished |= tokens == eos
        if bool(finished.all()) or position == max_new_tokens - 1:
            break
        logits = step(tokens)
    return [_until_eos(row, eos, pad) for row in generated.tolist()]


def prompt_bias(batch: Any, pad: int, value: float, vocab: int, banned: list[int]) -> torch.Tensor:
    """(rows, vocab): ``value`` at each token id of a row's prompt, 0 elsewhere (pads and banned
    tokens never get it)."""
    prompt = batch.text_ids[:, : batch.prompt_length]
    bias = torch.zeros((prompt.shape[0], vocab))
    bias.scatter_(1, prompt, value)
    bias[:, [pad, *banned]] = 0.0
    return bias


def banned_tokens(captioner: Captioner) -> list[int]:
    """Special tokens a caption never contains (all but </s>): a caption never emits padding."""
    tokenizer = captioner.tokenizer
    return sorted({i for i in tokenizer.all_special_ids if i != tokenizer.eos_token_id})


def _until_eos(ids: list[int], eos: int, pad: int) -> list[int]:
    if eos in ids:
        ids = ids[: ids.index(eos)]
    return [i for i in ids if i != pad]


@torch.no_grad()
def generate_per_sample_hf(
    captioner: Captioner,
    prefix: torch.Tensor,
    prompts: list[str],
    *,
    max_new_tokens: int = MAX_NEW_TOKENS,
    temperature: float = TEMPERATURE,
    top_p: float = TOP_P,
    seed: int = 0,
) -> list[list[int]]:
    """The baseline the benchmark compares against: one ``transformers`` ``generate`` per row
    (KV cache on, no padding). Sampling uses transformers' own sampler, seeded per row."""
    decoder = captioner.decoder
    eos, pad = captioner.tokenizer.eos_token_id, captioner.tokenizer.pad_token_id
    results = []
    for row, prompt in enumerate(prompts):
        batch = captioner.batch([prompt])
        embeds = captioner.embeds(prefix[row : row + 1], batch)
        mask = batch.attention_mask.to(prefix.device)
        keep = mask[0].bool()
        embeds, mask = embeds[:, keep], mask[:, keep]  # drop the (here useless) left padding
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 else {"do_sample": False}
        torch.manual_seed(seed + row)
        out = decoder.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens,
                               eos_token_id=eos, pad_token_id=pad, use_cache=True,
                               suppress_tokens=banned_tokens(captioner), **sampling)
        results.append(_until_eos(out[0].tolist(), eos, pad))
    return results


def decode(captioner: Captioner, ids: list[list[int]]) -> list[str]:
    return [text.strip() for text in captioner.tokenizer.batch_decode(ids, skip_special_tokens=True)]
