"""Realignment captioner at Altogether's size: batched KV-cache decoding (the realign step's
``generate``) with an OPT-1.3B-sized, randomly initialised decoder, in captions/s and tokens/s,
against that decoder's memory-bound roofline.

A decoding step reads every decoder weight once and each row's KV cache; at small batches that
traffic, not arithmetic, bounds the step. Roofline tokens/s = batch × bandwidth / (weight bytes +
batch × context × KV bytes per token), with the bandwidth measured on the same device as a large
device-to-device copy (read + write), so the ceiling is one this machine reaches. The decoder is
random (no hub download): it almost never emits </s>, so every row decodes ``max_new_tokens``.

``full`` needs a CUDA device (bf16, OPT-1.3B: hidden 2048, 24 layers, 32 heads, FFN 8192, vocab
50272); ``small`` runs a downsized OPT on whatever device there is, to check the harness.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from benchmarks.bench_captioner import _inputs


@dataclass(frozen=True)
class DecoderSize:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int = 50272


OPT_1_3B = DecoderSize(hidden=2048, layers=24, heads=32, ffn=8192)
SMOKE = DecoderSize(hidden=128, layers=2, heads=4, ffn=512)


def roofline_tokens_per_s(batch: int, weight_bytes: float, kv_bytes_per_token: float, context: float,
                          bandwidth: float) -> float:
    """Tokens/s a memory-bound decoder reaches at ``batch`` rows of ``context`` tokens each."""
    return batch * bandwidth / (weight_bytes + batch * context * kv_bytes_per_token)


def compute_roofline_tokens_per_s(flops_per_token: float, matmul_flops: float) -> float:
    """Tokens/s a decoder reaches when its matrix products, at the device's measured rate, bound it."""
    return matmul_flops / flops_per_token


def matmul_rate(device: Any, dtype: Any, n: int) -> float:
    """FLOP/s of an n×n×n matrix product on random data (the dtype the decoder runs in)."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(10):
        a @ b
    _synchronize(device)
    return 2 * n**3 * 10 / (time.perf_counter() - started)


def copy_bandwidth(device: Any, megabytes: int) -> float:
    """Bytes/s of a large tensor copy on ``device`` (each byte is read once and written once)."""
    import torch

    source = torch.empty(megabytes * 2**20, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    repeats, best = 5, float("inf")
    for _ in range(repeats):
        _synchronize(device)
        started = time.perf_counter()
        target.copy_(source)
        _synchronize(device)
        best = min(best, time.perf_counter() - started)
    return 2 * source.numel() / best


def _synchronize(device: Any) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def build(size: DecoderSize, device: Any, dtype: Any) -> Any:
    """A captioner: the shipped world captioner's tower and tokenizer, a random OPT decoder of ``size``."""
    from curate_captioner.config import CaptionerConfig
    from curate_captioner.model import Captioner
    from transformers import OPTConfig, OPTForCausalLM

    world = Captioner.load("world")
    config = OPTConfig(vocab_size=size.vocab, hidden_size=size.hidden, num_hidden_layers=size.layers,
                       num_attention_heads=size.heads, ffn_dim=size.ffn, max_position_embeddings=2048,
                       word_embed_proj_dim=size.hidden, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    decoder = OPTForCausalLM(config)
    captioner = Captioner.create(world.encoder, world.encoder_config, decoder, world.tokenizer,
                                 CaptionerConfig(features="pooled", mapper_width=256, mapper_layers=1,
                                                 name=f"opt-{size.hidden}x{size.layers}-random"))
    return captioner.to(device=device, dtype=dtype).eval()


def run(scale: str) -> dict[str, Any]:
    import torch
    from curate_captioner.generate import generate

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if scale == "full" and device != "cuda":
        raise RuntimeError("the OPT-1.3B-sized decoder benchmark needs a CUDA device; `small` runs a downsized "
                           "decoder anywhere")
    size, dtype = (OPT_1_3B, torch.bfloat16) if scale == "full" else (SMOKE, torch.bfloat16 if device == "cuda" else torch.float32)
    batches, new_tokens = ((1, 8, 32, 128, 256), 192) if scale == "full" else ((1, 4), 8)
    torch.manual_seed(0)
    captioner = build(size, device, dtype)
    decoder = captioner.decoder
    unique = {p.data_ptr(): p for p in decoder.parameters()}  # tied weights are read once
    weight_bytes = sum(p.numel() * p.element_size() for p in unique.values())
    element = torch.finfo(dtype).bits // 8
    kv_bytes_per_token = 2 * size.layers * size.hidden * element
    bandwidth = copy_bandwidth(device, 2048 if device == "cuda" else 256)
    matmul = matmul_rate(device, dtype, 8192 if device == "cuda" else 256)
    table = []
    with torch.inference_mode():
        images, prompts = _inputs(max(batches))
        prefix_all = captioner.prefix(*captioner.image_features(images))
        generate(captioner, prefix_all[:2], prompts[:2], max_new_tokens=4)  # warm up kernels
        for batch in batches:
            prefix, rows = prefix_all[:batch], prompts[:batch]
            # One untimed call at this batch first: a realign step decodes many batches of one
            # size, so its steady state has every (batch, cache length) shape seen and every
            # kernel loaded; on an H200 the first call ran 6x slower per token (55 vs 8 ms).
            generate(captioner, prefix, rows, max_new_tokens=new_tokens, row_keys=range(batch))
            _synchronize(device)
            started = time.perf_counter()
            ids = generate(captioner, prefix, rows, max_new_tokens=new_tokens, row_keys=range(batch))
            _synchronize(device)
            seconds = time.perf_counter() - started
            tokens = batch * new_tokens  # every row decodes every step (finished rows ride along)
            prompt_tokens = captioner.batch(rows).prompt_length
            context = captioner.config.prefix_length + prompt_tokens + 1 + new_tokens / 2
            memory_ceiling = roofline_tokens_per_s(batch, weight_bytes, kv_bytes_per_token, context, bandwidth)
            # Every weight is a multiply-add per token (the tied embedding once, as the LM head),
            # plus attention's QK^T and AV over the context.
            flops_per_token = 2 * weight_bytes / element + 4 * size.layers * size.hidden * context
            compute_ceiling = compute_roofline_tokens_per_s(flops_per_token, matmul)
            ceiling = min(memory_ceiling, compute_ceiling)
            table.append({"batch": batch, "new_tokens": new_tokens, "seconds": round(seconds, 3),
                          "captions_per_s": round(batch / seconds, 2), "tokens_per_s": round(tokens / seconds, 1),
                          "memory_roofline_tokens_per_s": round(memory_ceiling, 1),
                          "compute_roofline_tokens_per_s": round(compute_ceiling, 1),
                          "roofline_tokens_per_s": round(ceiling, 1), "of_roofline": round(tokens / seconds / ceiling, 3),
                          "ended_early": sum(len(row) < new_tokens for row in ids)})
    best = max(table, key=lambda row: row["tokens_per_s"])
    return {
        "headline": {f"tokens/s at batch {best['batch']} ({device})": best["tokens_per_s"],
                     "share of the roofline there (lesser of memory- and matmul-bound)": best["of_roofline"],
                     "captions/s there": best["captions_per_s"]},
        "table": table,
        "decoder": {**size.__dict__, "parameters": sum(p.numel() for p in unique.values()), "dtype": str(dtype),
                    "weight_bytes": weight_bytes, "kv_bytes_per_token": kv_bytes_per_token},
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "copy_bandwidth_gb_per_s": round(bandwidth / 1e9, 1),
        "matmul_tflop_per_s": round(matmul / 1e12, 1),
        "notes": [("Sampling T=0.2, top-p 0.7 (the realign defaults), one KV cache per batch; the image "
                   "encoder runs once up front and is not timed.")],
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "small"), indent=2))
