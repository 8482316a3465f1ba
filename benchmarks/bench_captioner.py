"""Realignment captioner: captions per second of batched KV-cache decoding (the realign step's
decoder: every row of a batch advances one token per decoder call) against one transformers
``generate`` per row (KV cache on, no padding), with the same model, images and alt-text prompts.
Both decode greedily so their captions must be identical, which is checked; the sampled default
(T=0.2, top-p 0.7) is timed for the batched decoder too. Image encoding is done once up front and
not timed: only decoding is compared.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _model() -> tuple[Any, str]:
    from curate_captioner.config import WORLD_MODEL_DIR
    from curate_captioner.model import Captioner

    if (WORLD_MODEL_DIR / "captioner.json").exists():
        return Captioner.load("world"), "shipped world captioner"
    sys.path.insert(0, str(REPO))
    raise RuntimeError("the world captioner is not shipped yet (plugins/curate_captioner/world_model)")


def _inputs(count: int) -> tuple[list[Any], list[str]]:
    """World-like images and alt-texts, rendered in memory (no world directory needed)."""
    import numpy as np

    from curate_world.alttext import write_alt_text
    from curate_world.render import render_scene
    from curate_world.scene import sample_scene

    images, prompts = [], []
    for index in range(count):
        rng = np.random.default_rng([1234, index])
        scene = sample_scene(rng)
        images.append(render_scene(scene, 64, rng))
        prompts.append(write_alt_text(scene, "faithful" if index % 3 else "partial", rng).text)
    return images, prompts


def run(scale: str) -> dict[str, Any]:
    import torch

    from curate_captioner.generate import generate, generate_per_sample_hf

    torch.set_num_threads(1)  # a shared CPU: more threads only add contention (see README)
    count, batch_size = (32, 32) if scale == "small" else (128, 64)
    captioner, which = _model()
    images, prompts = _inputs(count)
    with torch.inference_mode():
        prefix = captioner.prefix(*captioner.image_features(images))
        generate(captioner, prefix[:2], prompts[:2], temperature=0)  # warm up kernels
        timings: dict[str, list[float]] = {"batched": [], "per_sample": [], "batched_sampled": []}
        outputs: dict[str, list[list[int]]] = {}
        for _ in range(1 if scale == "small" else 2):
            started = time.perf_counter()
            batched = []
            for start in range(0, count, batch_size):
                batched += generate(captioner, prefix[start : start + batch_size], prompts[start : start + batch_size],
                                    temperature=0)
            timings["batched"].append(time.perf_counter() - started)
            started = time.perf_counter()
            single = generate_per_sample_hf(captioner, prefix, prompts, temperature=0)
            timings["per_sample"].append(time.perf_counter() - started)
            started = time.perf_counter()
            for start in range(0, count, batch_size):
                generate(captioner, prefix[start : start + batch_size], prompts[start : start + batch_size],
                         row_keys=range(start, min(count, start + batch_size)))
            timings["batched_sampled"].append(time.perf_counter() - started)
            outputs = {"batched": batched, "per_sample": single}
    if outputs["batched"] != outputs["per_sample"]:
        differ = sum(a != b for a, b in zip(outputs["batched"], outputs["per_sample"], strict=True))
        raise AssertionError(f"batched and per-sample greedy captions differ in {differ} of {count} rows")
    seconds = {name: min(values) for name, values in timings.items()}
    rate = {name: round(count / value, 2) for name, value in seconds.items()}
    tokens = sum(len(ids) + 1 for ids in outputs["batched"])
    ratio = round(rate["batched"] / rate["per_sample"], 2)
    return {
        "headline": {"batched / per-sample captions/s (greedy, same captions)": ratio,
                     "batched captions/s": rate["batched"], "per-sample captions/s": rate["per_sample"]},
        "table": [
            {"decoder": "batched KV cache (realign step)", "batch": batch_size, "captions": count,
             "seconds": round(seconds["batched"], 2), "captions_per_s": rate["batched"]},
            {"decoder": "batched KV cache, sampled T=0.2 top-p 0.7", "batch": batch_size, "captions": count,
             "seconds": round(seconds["batched_sampled"], 2), "captions_per_s": rate["batched_sampled"]},
            {"decoder": "transformers generate per row", "batch": 1, "captions": count,
             "seconds": round(seconds["per_sample"], 2), "captions_per_s": rate["per_sample"]},
        ],
        "ratio": ratio,
        "model": which,
        "generated_tokens": tokens,
        "threads": torch.get_num_threads(),
        "notes": [
            "CPU only in this session; the OPT-1.3B decoder roofline (tokens/s vs memory bandwidth on a GPU) "
            "is left for a session with a device.",
            "Greedy captions of both decoders are compared and must be identical.",
        ],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "small"), indent=2))
