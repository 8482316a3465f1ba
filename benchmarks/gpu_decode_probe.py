"""Where the realign decoder's time goes at OPT-1.3B size on a GPU, and what transformers' own
static-cache compiled decoding reaches on the same decoder: the reference for a CUDA-graph path.

    python -m benchmarks.gpu_decode_probe           # on the device: writes $OUT/gpu_decode_probe.json
    GPU_SESSION_SMALL=1 python -m benchmarks.gpu_decode_probe   # anywhere: the downsized decoder

Per batch size: the curate ``generate`` step time, split into the decoder's forward alone (one
token per row against a DynamicCache, as ``generate`` feeds it) and the sampler (``pick_tokens``)
alone; then transformers' ``generate`` greedy with ``cache_implementation="static"`` (which
compiles the forward and replays it as CUDA graphs) on the same embeddings. All timed with a
device synchronize around each loop.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

SMALL = os.environ.get("GPU_SESSION_SMALL") == "1"


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _timed(device: str, fn: Any, steps: int) -> float:
    """Milliseconds per call of ``fn`` over ``steps`` calls (after one untimed call)."""
    fn()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - started) / steps * 1000


def probe(batch: int, captioner: Any, prefix_all: Any, prompts_all: list[str], device: str,
          new_tokens: int) -> dict[str, Any]:
    import numpy as np
    import torch
    from transformers import DynamicCache

    from curate_captioner.config import TEMPERATURE, TOP_P
    from curate_captioner.generate import _accepts, generate, pick_tokens

    decoder = captioner.decoder
    prefix, prompts = prefix_all[:batch], prompts_all[:batch]
    rows = captioner.batch(prompts)
    embeds = captioner.embeds(prefix, rows)
    mask = rows.attention_mask.to(device)
    positions = rows.position_ids.to(device)
    cache_name = "cache" if _accepts(decoder, "cache") else "past_key_values"
    result: dict[str, Any] = {"batch": batch}

    _sync(device)
    started = time.perf_counter()
    generate(captioner, prefix, prompts, max_new_tokens=new_tokens, row_keys=range(batch))
    _sync(device)
    result["curate_generate_ms_per_step"] = round((time.perf_counter() - started) / new_tokens * 1000, 2)
    # The same call again: shapes (batch, every cache length) now seen once, kernels loaded.
    started = time.perf_counter()
    generate(captioner, prefix, prompts, max_new_tokens=new_tokens, row_keys=range(batch))
    _sync(device)
    result["curate_generate_warm_ms_per_step"] = round((time.perf_counter() - started) / new_tokens * 1000, 2)
    if os.environ.get("GPU_PROBE_PROFILE") and batch == 1:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        with profile(activities=activities) as prof:
            generate(captioner, prefix, prompts, max_new_tokens=24, row_keys=range(batch))
            _sync(device)
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=25, max_name_column_width=60))

    cache = DynamicCache(config=decoder.config)
    out = decoder(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True,
                  **{cache_name: cache}, logits_to_keep=1)
    cache = getattr(out, cache_name)
    tokens = out.logits[:, -1].argmax(-1).unsqueeze(1)
    state = {"mask": mask, "position": positions[:, -1:] + 1}

    def forward() -> None:
        state["mask"] = torch.cat([state["mask"], torch.ones((batch, 1), dtype=mask.dtype, device=device)], 1)
        decoder(input_ids=tokens, attention_mask=state["mask"], position_ids=state["position"], use_cache=True,
                **{cache_name: cache}, logits_to_keep=1)
        state["position"] = state["position"] + 1

    result["decoder_forward_ms"] = round(_timed(device, forward, new_tokens // 2), 2)
    logits = out.logits[:, -1].float()
    uniforms = np.random.default_rng(0).random(batch)
    result["sampler_ms"] = round(_timed(device, lambda: pick_tokens(logits, TEMPERATURE, TOP_P, uniforms), 20), 2)
    result["argmax_ms"] = round(_timed(device, lambda: logits.argmax(-1), 20), 3)

    keep = mask.bool().all(0)  # columns no row pads: HF's generate gets the same embeddings unpadded where possible
    try:
        started = time.perf_counter()
        decoder.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=8, min_new_tokens=8,
                         do_sample=False, cache_implementation="static", pad_token_id=0)
        _sync(device)
        result["hf_static_first_call_s"] = round(time.perf_counter() - started, 1)  # includes compiling
        started = time.perf_counter()
        decoder.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=new_tokens,
                         min_new_tokens=new_tokens, do_sample=False, cache_implementation="static", pad_token_id=0)
        _sync(device)
        result["hf_static_ms_per_step"] = round((time.perf_counter() - started) / new_tokens * 1000, 2)
        started = time.perf_counter()
        decoder.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=new_tokens,
                         min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
        _sync(device)
        result["hf_dynamic_ms_per_step"] = round((time.perf_counter() - started) / new_tokens * 1000, 2)
    except Exception as exc:  # the reference is optional: report why it did not run
        result["hf_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    result["unpadded_columns"] = int(keep.sum())
    return result


def main() -> None:
    import torch

    from benchmarks.bench_captioner import _inputs
    from benchmarks.bench_captioner_roofline import OPT_1_3B, SMOKE, build

    out = Path(os.environ.get("OUT", "/tmp/gpu_decode_probe_out"))
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    size, dtype = (SMOKE, torch.float32) if SMALL else (OPT_1_3B, torch.bfloat16)
    batches, new_tokens = ((1, 4), 16) if SMALL else ((1, 256), 96)
    torch.manual_seed(0)
    captioner = build(size, device, dtype)
    report: dict[str, Any] = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                              "decoder": size.__dict__, "new_tokens": new_tokens, "rows": []}
    with torch.no_grad():  # not inference_mode: transformers' static cache is compiled outside it
        images, prompts = _inputs(max(batches))
        prefix_all = captioner.prefix(*captioner.image_features(images))
    for batch in batches:
        with torch.no_grad():
            row = probe(batch, captioner, prefix_all, prompts, device, new_tokens)
        report["rows"].append(row)
        print(json.dumps(row), flush=True)
        (out / "gpu_decode_probe.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
