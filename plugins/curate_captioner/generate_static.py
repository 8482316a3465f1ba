"""Decoding against a static KV cache, with the one-token decode step replayed as a CUDA graph.

The eager loop in :mod:`curate_captioner.generate` grows a DynamicCache and its attention mask by
one column per token: every step allocates, and every step issues the decoder's hundreds of small
kernels from Python. At OPT-1.3B size on an H200 that made the step launch-bound (24 steps took
237 ms of CPU time for 44 ms of GPU work). Here the cache is preallocated at the length the batch
will reach (rounded up to a bucket, so batches of one size share it), the mask is a preallocated
additive 4D mask whose next column is opened before each step, and the token, position and cache
slot live in fixed buffers: the decode step then has fixed shapes and addresses, so on CUDA it is
captured once per (rows, cache length, dtype) and replayed per token.

The same code runs without graphs on any device (``graphs=False``, and always on CPU): it must
pick the same greedy tokens as the eager loop, which the tests check.

``fused`` (the default) puts the whole decode step in the graph: the logit adjustment (copy bias,
banned tokens), the pick (argmax, or nucleus sampling at uniforms drawn up front from each row's
stream, the same draws the eager loop makes), padding of finished rows, the write into the
generated tokens and the finished flags. The host then only replays the graph and checks every
``CHECK_EVERY`` steps whether all rows finished (one sync per check, not one per token); the
steps run after the last row finished only add padding. The fused step also attends over only
the cache slots written so far, rounded up to a ``BUCKET`` (one graph per such window): at batch
256 the keys and values read per step are most of the step's memory traffic, and the whole
preallocated length is up to twice what the average step needs. Unfused, the sampler runs outside the
graph with a host sync per token (on the H200 at batch 256: 8.1 ms per step against 2.6 ms of
roofline).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from curate_captioner.generate import (
    _accepts,
    _until_eos,
    logit_adjustment,
    pick_tokens,
    row_streams,
    sample_captions,
)

if TYPE_CHECKING:
    from curate_captioner.model import Captioner

log = logging.getLogger("curate_captioner")
BUCKET = 64  # cache lengths are rounded up to this: prompts of similar length share one graph
CHECK_EVERY = 8  # fused decoding: steps between the host's checks that every row finished


def cache_length(prompt_columns: int, max_new_tokens: int) -> int:
    """Cache slots a batch needs (the prefill, then one per decode step), rounded up to a bucket."""
    need = prompt_columns + max(max_new_tokens - 1, 1)
    return -(-need // BUCKET) * BUCKET


def _cache_class() -> type:
    from transformers import DynamicCache

    class SlotCache(DynamicCache):  # type: ignore[misc, valid-type]
        """Keys and values in preallocated (rows, heads, length, head_dim) tensors, written at the
        slots ``positions`` names (a device tensor the caller fills in place): what a captured
        graph can replay. A DynamicCache subclass only so that decoders which check the type take
        it; the storage and the update are its own."""

        def __init__(self, config: Any, length: int):
            super().__init__(config=config)
            self.length, self.seen = length, 0
            self.keys_: dict[int, torch.Tensor] = {}
            self.values_: dict[int, torch.Tensor] = {}
            self.positions: torch.Tensor | None = None
            self.visible: int | None = None  # prefill: return only the first columns (eager)

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int,
                   *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            if layer_idx not in self.keys_:
                rows, heads, _, _ = key_states.shape
                self.keys_[layer_idx] = key_states.new_zeros((rows, heads, self.length, key_states.shape[-1]))
                self.values_[layer_idx] = value_states.new_zeros((rows, heads, self.length, value_states.shape[-1]))
            keys, values = self.keys_[layer_idx], self.values_[layer_idx]
            keys.index_copy_(2, self.positions, key_states)
            values.index_copy_(2, self.positions, value_states)
            if self.visible is not None:
                return keys[:, :, : self.visible], values[:, :, : self.visible]
            return keys, values

        def get_seq_length(self, layer_idx: int = 0, *args: Any, **kwargs: Any) -> int:
            return self.seen

        def get_mask_sizes(self, *args: Any, **kwargs: Any) -> tuple[int, int]:
            return self.length, 0

        def get_max_cache_shape(self, *args: Any, **kwargs: Any) -> int:
            return self.length

    return SlotCache


class StaticDecoder:
    """One batch shape's preallocated cache and step buffers, and (on CUDA) its captured graph."""

    def __init__(self, decoder: Any, rows: int, length: int, dtype: torch.dtype, device: torch.device,
                 graphs: bool):
        self.decoder, self.rows, self.length, self.dtype, self.device = decoder, rows, length, dtype, device
        self.cache = _cache_class()(decoder.config, length)
        self.cache_name = "cache" if _accepts(decoder, "cache") else "past_key_values"
        self.extra = {"logits_to_keep": 1} if _accepts(decoder, "logits_to_keep") else {}
        self.tokens = torch.zeros((rows, 1), dtype=torch.long, device=device)
        self.position_ids = torch.zeros((rows, 1), dtype=torch.long, device=device)
        self.slot = torch.zeros(1, dtype=torch.long, device=device)
        self.mask = torch.zeros((rows, 1, 1, length), dtype=dtype, device=device)
        self.graphs = graphs and device.type == "cuda"
        self.graph: Any = None
        self.logits: torch.Tensor | None = None
        self.generated: torch.Tensor | None = None  # the fused step's buffers (fused_buffers)
        self.prompt_columns = 0

    def prefill(self, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The prompt columns into cache slots [0, columns); the logits of the last column."""
        rows, columns = mask.shape
        lowest = torch.finfo(self.dtype).min
        keep = mask.bool()
        causal = torch.ones((columns, columns), dtype=torch.bool, device=self.device).tril()
        allowed = causal[None, :, :] & keep[:, None, :]
        square = torch.full((rows, 1, columns, columns), lowest, dtype=self.dtype, device=self.device)
        square.masked_fill_(allowed[:, None], 0.0)
        self.cache.positions = torch.arange(columns, device=self.device)
        self.cache.visible, self.cache.seen = columns, 0
        out = self.decoder(inputs_embeds=embeds, attention_mask=square, position_ids=positions, use_cache=True,
                           **{self.cache_name: self.cache}, **self.extra)
        self.cache.visible, self.cache.seen = None, columns
        self.prompt_columns = columns
        self.cache.positions = self.slot
        # The decode steps' mask: the prompt's own columns (not its padding) are open; each step
        # opens its slot before it runs.
        self.mask.fill_(lowest)
        self.mask[:, 0, 0, :columns].masked_fill_(keep, 0.0)
        self.slot.fill_(columns - 1)
        self.position_ids.copy_(positions[:, -1:])
        return out.logits[:, -1]

    def _forward(self) -> torch.Tensor:
        out = self.decoder(input_ids=self.tokens, attention_mask=self.mask, position_ids=self.position_ids,
                           use_cache=True, **{self.cache_name: self.cache}, **self.extra)
        return out.logits[:, -1]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row at the next slot; the next logits (a buffer the next step
        overwrites: use them before stepping again)."""
        self.tokens.copy_(tokens.unsqueeze(1))
        self.slot.add_(1)
        self.position_ids.add_(1)
        self.mask.index_fill_(3, self.slot, 0.0)
        if not self.graphs:
            return self._forward()
        if self.graph is None:
            try:
                self._capture()
            except RuntimeError as error:  # a decoder whose step syncs with the host cannot be captured
                log.warning("decoder step cannot be captured as a CUDA graph (%s); decoding without graphs",
                            str(error).splitlines()[0][:200])
                self.graphs = False
                return self._forward()
        self.graph.replay()
        assert self.logits is not None
        return self.logits

    def _capture(self) -> None:
        """Warm the step on a side stream (as CUDA graph capture requires), then capture it. The
        warm-up runs compute exactly what the captured step will (same slot, same token), so the
        slot it writes is rewritten with the same values by the first replay."""
        stream = torch.cuda.Stream(device=self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._forward()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        # Each graph keeps its own memory pool: one pool shared by the graphs of several batch sizes
        # failed the second capture on an H200 (CUDACachingAllocator "use_count > 0" assert).
        with torch.cuda.graph(graph):
            self.logits = self._forward()
        self.graph = graph

    # -- the fused step: the whole decode step, sampler and bookkeeping included ---------------

    def fused_buffers(self, vocab: int, adjust: torch.Tensor) -> None:
        """The fused step's fixed buffers (made once per decoder: the graph reads their addresses)."""
        if getattr(self, "generated", None) is None:
            rows, device = self.rows, self.device
            self.adjust = torch.zeros((rows, vocab), dtype=adjust.dtype, device=device)
            self.finished = torch.zeros(rows, dtype=torch.bool, device=device)
            self.generated = torch.zeros((rows, self.length), dtype=torch.long, device=device)
            self.column = torch.zeros(1, dtype=torch.long, device=device)
            self.uniforms = torch.zeros((self.length, rows), dtype=torch.float32, device=device)
            self.fused_graphs: dict[tuple[float, float, int, int, int], Any] = {}
        self.adjust.copy_(adjust.expand(self.rows, -1))

    def _fused_body(self, temperature: float, top_p: float, eos: int, pad: int, window: int) -> None:
        """One decode step from ``tokens`` (the last pick) to the next pick, all on the device,
        attending over the first ``window`` cache slots (which hold every slot written so far)."""
        self.slot.add_(1)
        self.position_ids.add_(1)
        self.mask.index_fill_(3, self.slot, 0.0)
        self.cache.visible = window
        try:
            out = self.decoder(input_ids=self.tokens, attention_mask=self.mask[..., :window],
                               position_ids=self.position_ids, use_cache=True, **{self.cache_name: self.cache},
                               **self.extra)
        finally:
            self.cache.visible = None
        logits = out.logits[:, -1] + self.adjust
        uniforms = self.uniforms.index_select(0, self.column)[0] if temperature > 0 else None
        tokens = pick_tokens(logits, temperature, top_p, uniforms)
        tokens = torch.where(self.finished, torch.full_like(tokens, pad), tokens)
        self.generated.index_copy_(1, self.column, tokens.unsqueeze(1))
        self.finished |= tokens == eos
        self.tokens.copy_(tokens.unsqueeze(1))
        self.column.add_(1)

    def fused_step(self, temperature: float, top_p: float, eos: int, pad: int, window: int) -> None:
        key = (float(temperature), float(top_p), int(eos), int(pad), int(window))
        if not self.graphs:
            self._fused_body(*key)
            return
        graph = self.fused_graphs.get(key)
        if graph is None:
            try:
                graph = self.fused_graphs[key] = self._capture_fused(key)
            except RuntimeError as error:
                log.warning("fused decode step cannot be captured as a CUDA graph (%s); decoding without graphs",
                            str(error).splitlines()[0][:200])
                self.graphs = False
                self._fused_body(*key)
                return
        graph.replay()

    def _capture_fused(self, key: tuple[float, float, int, int, int]) -> Any:
        """Warm the fused step on a side stream, then capture it. The warm-up advances the step's
        state (slot, mask, tokens, …): it is restored before the first replay; the cache slot it
        wrote is rewritten by that replay before anything reads it."""
        state = [self.slot, self.position_ids, self.mask, self.tokens, self.column, self.finished, self.generated]
        saved = [t.clone() for t in state]

        def restore() -> None:
            for tensor, copy in zip(state, saved, strict=True):
                tensor.copy_(copy)

        try:
            stream = torch.cuda.Stream(device=self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                self._fused_body(*key)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            restore()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._fused_body(*key)
        except RuntimeError:  # the caller decodes this step without graphs, from the state before it
            restore()
            raise
        return graph

    def decode_fused(self, first: torch.Tensor, uniforms: torch.Tensor | None, temperature: float, top_p: float,
                     max_new_tokens: int, eos: int, pad: int) -> list[list[int]]:
        """The decoding loop of :func:`curate_captioner.generate.sample_captions` with the step
        fused: ``first`` is the first pick (from the prefill's logits); ``uniforms``
        (max_new_tokens, rows) the rows' draws, None for greedy."""
        self.tokens.copy_(first.unsqueeze(1))
        self.generated.fill_(pad)
        self.generated[:, 0] = first
        self.finished.copy_(first == eos)
        self.column.fill_(1)
        if uniforms is not None:
            self.uniforms[: uniforms.shape[0]].copy_(uniforms)
        for step in range(1, max_new_tokens):
            if (step - 1) % CHECK_EVERY == 0 and bool(self.finished.all()):
                break
            written = self.prompt_columns + step  # slots [0, written) hold keys once this step wrote its own
            window = min(self.length, -(-written // BUCKET) * BUCKET)
            self.fused_step(temperature, top_p, eos, pad, window)
        return [_until_eos(row, eos, pad) for row in self.generated[:, :max_new_tokens].tolist()]


def static_decoder(captioner: Captioner, rows: int, length: int, dtype: torch.dtype, device: torch.device,
                   graphs: bool) -> StaticDecoder:
    """The captioner's StaticDecoder for this shape, made once and kept on the captioner (the
    cache and the graph are reused by every later batch of the same shape)."""
    key = (rows, length, dtype, str(device), graphs and device.type == "cuda", torch.is_inference_mode_enabled())
    decoders = captioner.__dict__.setdefault("_static_decoders", {})
    if key not in decoders:
        decoders[key] = StaticDecoder(captioner.decoder, rows, length, dtype, device, graphs)
    return decoders[key]


@torch.no_grad()
def generate_static(
    captioner: Captioner,
    prefix: torch.Tensor,
    prompts: list[str],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    row_keys: Sequence[int] | None,
    copy_bias: float,
    graphs: bool,
    fused: bool = True,
) -> list[list[int]]:
    """What :func:`curate_captioner.generate.generate` returns, decoded against a static cache
    (and with ``graphs`` on CUDA, the decode step replayed as a CUDA graph)."""
    rows = prefix.shape[0]
    device = prefix.device
    batch = captioner.batch(prompts)
    mask = batch.attention_mask.to(device)
    positions = batch.position_ids.to(device)
    streams = row_streams(seed, row_keys if row_keys is not None else range(rows)) if temperature > 0 else None
    eos, pad = captioner.tokenizer.eos_token_id, captioner.tokenizer.pad_token_id
    adjust = logit_adjustment(captioner, batch, pad, copy_bias, rows, device)
    embeds = captioner.embeds(prefix, batch)
    runner = static_decoder(captioner, rows, cache_length(mask.shape[1], max_new_tokens), embeds.dtype, device, graphs)
    logits = runner.prefill(embeds, mask, positions) + adjust
    if not fused or max_new_tokens < 2:
        return sample_captions(logits, lambda tokens: runner.step(tokens) + adjust, streams, temperature, top_p,
                               max_new_tokens, eos, pad)
    draws = None
    if streams is not None:  # every position's draw up front: the draws the eager loop makes, in order
        table = np.array([[s.random() for s in streams] for _ in range(max_new_tokens)])
        draws = torch.as_tensor(table, dtype=torch.float32).to(device)
    runner.fused_buffers(logits.shape[-1], adjust)
    first = pick_tokens(logits, temperature, top_p, draws[0] if draws is not None else None)
    return runner.decode_fused(first, draws, temperature, top_p, max_new_tokens, eos, pad)
