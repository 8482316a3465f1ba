"""The GPU numbers in one prepared run, for a session that is lent a device (one call, minutes).

    bash benchmarks/gpu_device.sh               # on the device: unpacks the carried wheels, runs this
    python -m benchmarks.gpu_session            # writes $OUT/gpu_session.json
    SMOKE=1 python -m benchmarks.gpu_session    # anywhere: tiny sizes on the CPU, checks the script
                                                # (GPU_SESSION_SMALL=1 is the same)

What it measures, in this order (what run 2 of 2026-12-04 measured and does not change is not
measured again: the raw open_clip loop, the loader/autocast variants, the eager decoder,
SemDeDup at 1M and on the CPU):

1. The device's two ceilings: device-to-device copy bandwidth and a bf16 8192³ matmul.
2. ``clip_score`` images/s for ViT-B/32 and ViT-L/14 (random weights) through the step's shard
   code path (``decode: device``, bf16 weights, one pass: texts tokenized in the workers, both
   towers per batch, no host sync per batch), eager and compiled (the compile paid in a warm-up
   run, reported apart); against its parts: the model alone (eager, compiled), the DataLoader
   workers alone at 4, 8 and 16 workers, the device JPEG decode alone. 256×256 JPEGs.
3. The realign decoder at OPT-1.3B size (random weights, bf16, 192 new tokens): the static KV
   cache with the forward replayed as a CUDA graph and the sampler outside it, against the fused
   step (``curate_captioner.generate_static``: sampler and bookkeeping in the graph, attention
   over the written slots), at batch 256, 32, 512 and 1, against the roofline; the split: the
   captured forward alone, per step.
4. SemDeDup with the torch backend on 10M × 512 clustered float16 embeddings (once: its goal is met).
5. The repository's GPU tests (``pytest --noconftest -m gpu tests/gpu``).
6. Every module of ``benchmarks/gpu_parts`` (other helpers' parts), by name, each in a child
   process with its ``SECONDS`` as a hard limit (``python -m benchmarks.gpu_parts NAME``).

Every section has a time budget (the whole stays under ``GPU_SESSION_BUDGET``, 470 s on a device)
and the report is rewritten after each, so a crash or a timeout keeps what was measured before.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SMALL = os.environ.get("GPU_SESSION_SMALL") == "1" or os.environ.get("SMOKE") == "1"
WORKERS = int(os.environ.get("GPU_SESSION_WORKERS", str(min(16, os.cpu_count() or 1))))
BUDGET_S = float(os.environ.get("GPU_SESSION_BUDGET", "300" if SMALL else "470"))
STARTED = time.perf_counter()


def _say(*parts: Any) -> None:
    print(f"[{time.strftime('%H:%M:%S')} +{time.perf_counter() - STARTED:.0f}s]", *parts, flush=True)


def session_left() -> float:
    return BUDGET_S - (time.perf_counter() - STARTED)


class Budget:
    """A part's own deadline (never past the session's); optional measurements ask it first."""

    def __init__(self, seconds: float):
        self.until = time.perf_counter() + max(0.0, min(seconds, session_left()))

    def left(self) -> float:
        return self.until - time.perf_counter()

    def allows(self, seconds: float) -> bool:
        return self.left() >= seconds


def _sync(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def ceilings(device: str) -> dict[str, float]:
    import torch

    from benchmarks.bench_captioner_roofline import copy_bandwidth, matmul_rate

    bandwidth = copy_bandwidth(device, 4096 if device == "cuda" else 64)
    cuda = device == "cuda"
    flops = matmul_rate(device, torch.bfloat16 if cuda else torch.float32, 8192 if cuda else 512)
    return {"copy_bandwidth_gb_per_s": round(bandwidth / 1e9, 1), "matmul_tflop_per_s": round(flops / 1e12, 1)}


# -- 2. the realign decoder ----------------------------------------------------------------------

# Run 2 of 2026-12-04 (H200, bf16, 192 new tokens): the eager DynamicCache loop's tokens/s per
# batch size. It does not change with the static path's work, so it is not measured again.
EAGER_TOKENS_PER_S = {1: 98.5, 32: 2750.1, 256: 15786.4}


def _forward_graph_ms(captioner: Any, batch: int, replays: int = 20) -> float | None:
    """ms per replay of the unfused runner's captured forward (decoder only, whole cache length):
    the step's own floor, against which the fused step's sampler and bookkeeping are read."""
    import torch

    for runner in captioner.__dict__.get("_static_decoders", {}).values():
        if runner.rows == batch and getattr(runner, "graph", None) is not None:
            runner.graph.replay()
            torch.cuda.synchronize()
            started = time.perf_counter()
            for _ in range(replays):
                runner.graph.replay()
            torch.cuda.synchronize()
            return (time.perf_counter() - started) / replays * 1000
    return None


def decoder(budget: Budget) -> dict[str, Any]:
    """Static cache + CUDA graphs (sampler outside the graph, a host sync per token) against the
    fused step (the whole step in the graph, attention over the written slots), per batch size,
    against the roofline; and the step's split: the captured forward alone."""
    import torch

    from benchmarks.bench_captioner_roofline import (
        OPT_1_3B,
        SMOKE,
        build,
        compute_roofline_tokens_per_s,
        copy_bandwidth,
        matmul_rate,
        roofline_tokens_per_s,
    )
    from benchmarks.bench_captioner import _inputs
    from curate_captioner.generate import generate

    device = "cuda" if torch.cuda.is_available() else "cpu"
    size, dtype = (SMOKE, torch.float32) if SMALL or device != "cuda" else (OPT_1_3B, torch.bfloat16)
    batches, new_tokens = ((1, 4), 8) if SMALL else ((256, 32, 512, 1), 192)
    torch.manual_seed(0)
    captioner = build(size, device, dtype)
    unique = {p.data_ptr(): p for p in captioner.decoder.parameters()}
    weight_bytes = sum(p.numel() * p.element_size() for p in unique.values())
    element = torch.finfo(dtype).bits // 8
    kv_bytes_per_token = 2 * size.layers * size.hidden * element
    bandwidth = copy_bandwidth(device, 2048 if device == "cuda" else 64)
    matmul = matmul_rate(device, dtype, 8192 if device == "cuda" else 256)
    # CPU: the static paths without graphs (what the device replays as graphs).
    modes = {"static+graphs": {"static": True, "fused": False}, "fused": {"static": True, "fused": True}}
    table = []
    with torch.inference_mode():
        images, prompts = _inputs(max(batches))
        prefix_all = captioner.prefix(*captioner.image_features(images))
        for batch in batches:
            if not budget.allows(8):
                table.append({"batch": batch, "skipped": "part budget spent"})
                continue
            prefix, rows = prefix_all[:batch], prompts[:batch]
            prompt_tokens = captioner.batch(rows).prompt_length
            context = captioner.config.prefix_length + prompt_tokens + 1 + new_tokens / 2
            memory_ceiling = roofline_tokens_per_s(batch, weight_bytes, kv_bytes_per_token, context, bandwidth)
            flops_per_token = 2 * weight_bytes / element + 4 * size.layers * size.hidden * context
            ceiling = min(memory_ceiling, compute_roofline_tokens_per_s(flops_per_token, matmul))
            row: dict[str, Any] = {"batch": batch, "new_tokens": new_tokens, "roofline_tokens_per_s": round(ceiling, 1),
                                   "roofline_ms_per_step": round(batch / ceiling * 1000, 2)}
            if batch in EAGER_TOKENS_PER_S and not SMALL:
                row["eager_tokens_per_s_run2"] = EAGER_TOKENS_PER_S[batch]
            ids = {}
            for name, options in modes.items():
                if not budget.allows(5):
                    row[name] = "skipped: part budget spent"
                    continue
                try:
                    started = time.perf_counter()
                    generate(captioner, prefix, rows, max_new_tokens=new_tokens, row_keys=range(batch),
                             temperature=0, **options)  # warm: kernels loaded, the graphs captured
                    _sync(device)
                    warm = time.perf_counter() - started
                    started = time.perf_counter()
                    ids[name] = generate(captioner, prefix, rows, max_new_tokens=new_tokens, row_keys=range(batch),
                                         temperature=0, **options)
                    _sync(device)
                    seconds = time.perf_counter() - started
                except Exception as error:  # a failed capture or an out-of-memory: the next mode, batch
                    row[name] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
                    _say("decoder batch", batch, name, row[name])
                    if device == "cuda":
                        torch.cuda.empty_cache()
                    continue
                tokens = batch * new_tokens
                row[name] = {"first_call_s": round(warm, 3), "seconds": round(seconds, 3),
                             "tokens_per_s": round(tokens / seconds, 1),
                             "ms_per_step": round(seconds / new_tokens * 1000, 2),
                             "of_roofline": round(tokens / seconds / ceiling, 3)}
                if name == "static+graphs" and device == "cuda":
                    forward = _forward_graph_ms(captioner, batch)
                    if forward is not None:  # the split: captured forward vs the rest of the step
                        row["forward_graph_ms_full_cache"] = round(forward, 2)
                        row[name]["outside_forward_ms_per_step"] = round(seconds / new_tokens * 1000 - forward, 2)
                _say("decoder batch", batch, name, row[name])
            if len(ids) == 2:
                first, second = ids.values()
                row["same_greedy_captions"] = round(sum(a == b for a, b in zip(first, second)) / batch, 3)
                row["mean_caption_tokens"] = round(sum(len(a) for a in second) / batch, 1)
            runners = captioner.__dict__.get("_static_decoders", {})
            row["graphs_captured"] = sum(1 for r in runners.values() if getattr(r, "graph", None) is not None) + \
                sum(len(getattr(r, "fused_graphs", {}) or {}) for r in runners.values())
            table.append(row)
            runners.clear()  # this batch size's cache and graphs are not needed again
            if device == "cuda":
                torch.cuda.empty_cache()
    return {"decoder": {**size.__dict__, "dtype": str(dtype), "weight_bytes": weight_bytes}, "device": device,
            "greedy": True, "copy_bandwidth_gb_per_s": round(bandwidth / 1e9, 1),
            "matmul_tflop_per_s": round(matmul / 1e12, 1), "table": table}


# -- 3. SemDeDup, torch backend ------------------------------------------------------------------

def clustered(n: int, dim: int, device: str, seed: int, duplicates: float = 0.01) -> Any:
    """(n, dim) unit float16 rows around n/100 random centers (cosine ~0.8 within a center) with a
    ``duplicates`` fraction replaced by near-copies (cosine ~0.999) of other rows: made on the
    device, returned as a host numpy array (what the embedding store hands the step)."""
    import numpy as np
    import torch

    generator = torch.Generator(device=device).manual_seed(seed)
    centers = torch.nn.functional.normalize(torch.randn(max(1, n // 100), dim, device=device,
                                                        generator=generator), dim=1)
    out = np.empty((n, dim), dtype=np.float16)
    chunk = 1 << 20
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        which = torch.randint(0, centers.shape[0], (rows,), device=device, generator=generator)
        x = centers[which] + 0.5 * torch.randn(rows, dim, device=device, generator=generator) / dim**0.5
        out[start:start + rows] = torch.nn.functional.normalize(x, dim=1).half().cpu().numpy()
    rng = np.random.default_rng(seed)
    copies = rng.choice(n, size=int(n * duplicates), replace=False)
    sources = rng.choice(n, size=copies.size)
    for start in range(0, copies.size, chunk):
        src = torch.from_numpy(out[sources[start:start + chunk]]).to(device).float()
        src = src + 0.05 * torch.randn(src.shape, device=device, generator=generator) / dim**0.5
        out[copies[start:start + chunk]] = torch.nn.functional.normalize(src, dim=1).half().cpu().numpy()
    return out


def semdedup(budget: Budget) -> dict[str, Any]:
    import torch

    from curate_dedup import near

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes = (20_000, 5_000) if SMALL else (10_000_000, 1_000_000)
    dim = 64 if SMALL else 512
    options = near.SemDedupOptions(clusters=None, niter=20, points_per_centroid=64, spill=0.02)
    result: dict[str, Any] = {"dim": dim, "eps": 0.06, "options": options.__dict__, "runs": []}

    def run(n: int, where: str) -> None:
        started = time.perf_counter()
        vectors = clustered(n, dim, device, seed=n)
        made = time.perf_counter() - started
        started = time.perf_counter()
        pairs = near.semdedup(vectors, 0.94, options, 0, "gpu" if where == "cuda" else "cpu", engine="torch")
        _sync(device)
        seconds = time.perf_counter() - started
        record = {"rows": n, "on": where, "seconds": round(seconds, 2), "pairs": int(pairs.first.size),
                  "data_seconds": round(made, 1), **pairs.facts}
        result["runs"].append(record)
        _say("semdedup", record)
        del vectors, pairs

    # Its goal is met (run 2 of 2026-12-04: 10M in 8.3 s, 1M 6.9x faster than 16 CPU cores): once
    # at 10M on the device, as the regression check; a small CPU run elsewhere.
    run(sizes[0] if device == "cuda" else sizes[1], device)
    return result


# -- 4. clip_score -------------------------------------------------------------------------------

def _write_image(args: tuple[str, int]) -> None:
    import numpy as np
    from PIL import Image, ImageDraw

    folder, index = args
    rng = np.random.default_rng(index)
    size = 256
    # A smooth background and a few shapes: decodes like a photo-sized JPEG, not like noise.
    y, x = np.mgrid[0:size, 0:size] / size
    colours = rng.uniform(0, 255, (2, 3))
    background = (colours[0] * x[..., None] + colours[1] * y[..., None]) / 1.5
    image = Image.fromarray(background.clip(0, 255).astype("uint8"))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = rng.integers(0, size - 40, 2)
        w, h = rng.integers(20, 120, 2)
        draw.ellipse([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    image.save(f"{folder}/{index:07d}.jpg", quality=90)


def image_folder(folder: Path, count: int) -> Path:
    from multiprocessing import Pool

    from benchmarks.gpu_session import _write_image as write  # by module name: picklable under -m too

    folder.mkdir(parents=True, exist_ok=True)
    have = len(list(folder.glob("*.jpg")))
    if have < count:
        with Pool(WORKERS) as pool:
            pool.map(write, [(str(folder), i) for i in range(count)], chunksize=256)
    return folder


def model_only(clip: Any, batch_size: int, batches: int, dtype: Any = None, encode_image: Any = None) -> float:
    """Images/s of encode_image + the text tower on device-resident inputs: the loader-free
    ceiling. The text tower is the step's (``curate_clip.text_tower``: each text on its own tokens),
    so the ceiling is the fastest of the two, not open_clip's padded ``encode_text``.
    ``dtype``: the weights' dtype (bf16: no autocast); None: float32 weights under autocast.
    ``encode_image``: another image tower call (a compiled one)."""
    import torch

    from curate_clip.text_tower import TextTower

    size = clip.model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    cuda = clip.device.startswith("cuda")
    encode_image = encode_image or clip.model.encode_image
    pixels = torch.randn(batch_size, 3, size, size, device=clip.device, dtype=dtype or torch.float32)
    tokens = clip.tokenizer(["a photo of a red circle next to a blue square"] * batch_size).to(clip.device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype is None) if cuda \
        else torch.autocast("cpu", enabled=False)
    encode_text = TextTower(clip.model)
    with torch.inference_mode(), autocast:
        for _ in range(2):
            encode_image(pixels), encode_text(tokens)
        _sync(clip.device)
        started = time.perf_counter()
        for _ in range(batches):
            encode_image(pixels), encode_text(tokens)
        _sync(clip.device)
    return batch_size * batches / (time.perf_counter() - started)


def loader_alone(step: Any, refs: list[Any], texts: list[str], workers: int, batch_size: int,
                 decode_here: bool = False) -> float:
    """Images/s of what the step's DataLoader workers do for ``decode: device`` (read the JPEG
    bytes, pack them, tokenize the texts; ``decode_here``: ``decode: workers``, also decode), with
    nothing on the device: the input side's ceiling."""
    import torch
    from torch.utils.data import DataLoader

    from curate_clip import device_decode
    from curate_clip.score import _TokenCollate, _WithTexts, split_preprocess

    loader_part, _ = split_preprocess(step.clip.preprocess)
    loader = DataLoader(_WithTexts(device_decode.EncodedImages(refs, None, loader_part, decode_here), [texts]),
                        collate_fn=_TokenCollate(device_decode.collate, step.clip.tokenizer, 1),
                        batch_size=batch_size, num_workers=workers, prefetch_factor=4 if workers else None,
                        pin_memory=decode_here and torch.cuda.is_available())
    started = time.perf_counter()
    rows = sum(len(batch["kinds"]) for batch, _ in loader)
    return rows / (time.perf_counter() - started)


def decode_alone(step: Any, refs: list[Any], texts: list[str], batch_size: int, repeats: int) -> float:
    """Images/s of the main process's share for ``decode: device``: one packed batch decoded
    (nvjpeg on CUDA), resized and center-cropped, ``repeats`` times."""
    from curate_clip import device_decode
    from curate_clip.score import _TokenCollate, _WithTexts, split_preprocess

    loader_part, _ = split_preprocess(step.clip.preprocess)
    dataset = _WithTexts(device_decode.EncodedImages(refs[:batch_size], None, loader_part), [texts[:batch_size]])
    batch, _ = _TokenCollate(device_decode.collate, step.clip.tokenizer, 1)([dataset[i] for i in range(len(dataset))])
    transform = device_decode.device_transform(loader_part)
    size = step.clip.model.visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    device_decode.decode_batch(batch, transform, loader_part, size, step.clip.device)
    _sync(step.clip.device)
    started = time.perf_counter()
    for _ in range(repeats):
        device_decode.decode_batch(batch, transform, loader_part, size, step.clip.device)
    _sync(step.clip.device)
    return len(batch["kinds"]) * repeats / (time.perf_counter() - started)


def clip_throughput(model: str, count: int, batch_size: int, work: Path, budget: Budget) -> dict[str, Any]:
    """``clip_score`` images/s through the shard code path (``decode: device``, bf16 weights, the
    one-pass loop), eager and compiled (compile paid in a warm-up run, reported apart), against
    its parts: the model alone (eager, compiled), the DataLoader workers alone at 4/8/16 workers,
    the device decode alone. Run 2 of 2026-12-04 measured the raw open_clip loop and the loader
    and autocast variants: not again."""
    import numpy as np
    import polars as pl
    import torch

    from benchmarks.step_harness import StepHarness
    from curate.shards import iter_shard_files
    from curate_clip.score import ClipScore

    folder = image_folder(work / "images", count)
    keys = [f"{i:07d}" for i in range(count)]
    texts = [f"a photo number {i} of shapes on a gradient" for i in range(count)]
    refs = [{"shard": str(folder), "key": key} for key in keys]
    table = pl.DataFrame({"uid": keys, "alt_text": texts, "image": refs})
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    result: dict[str, Any] = {"model": model, "images": count, "batch_size": batch_size, "workers": WORKERS,
                              "images_per_s": {}, "seconds": {}}
    rate, seconds_of = result["images_per_s"], result["seconds"]
    step = ClipScore(ClipScore.Params(model=model, batch_size=batch_size, workers=WORKERS, device="auto",
                                      decode="device", precision="bf16"))
    harnesses = {"step device bf16": StepHarness(step, table, work / f"harness-{model}", "clip_score",
                                                 shard_size=count)}
    workers_step = ClipScore(ClipScore.Params(model=model, batch_size=batch_size, workers=WORKERS, device="auto",
                                              decode="workers", precision="bf16"))
    workers_step.clip = step.clip
    workers_step.prepare_model()
    harnesses["step workers bf16"] = StepHarness(workers_step, table, work / f"harness-{model}-w", "clip_score",
                                                 shard_size=count, setup=False)
    result["device"] = step.clip.device
    scores: dict[str, Any] = {}

    def timed(name: str, harness: StepHarness) -> None:
        _sync(step.clip.device)
        started = time.perf_counter()
        out = harness.run()
        seconds_of.setdefault(name, []).append(round(time.perf_counter() - started, 2))
        scores[name] = pl.concat([pl.read_parquet(f) for f in iter_shard_files(out)])["clip_score"].to_numpy()
        rate[name] = round(count / min(seconds_of[name]), 1)
        _say(model, name, rate[name], "img/s")

    batches = 2 if SMALL else 20
    rate["model alone bf16"] = round(model_only(step.clip, batch_size, batches, dtype=step._dtype), 1)
    _say(model, "model alone bf16", rate["model alone bf16"])
    for _ in range(2):  # alternating, best of two where the budget allows
        for name, harness in harnesses.items():
            if budget.allows(1.5 * min(seconds_of.get(name) or [3.0]) + 15):
                timed(name, harness)
    # The input side alone: the workers' reads/packing/tokenizing (and decoding), the device decode.
    sample = refs[: min(count, 4 * batch_size if SMALL else 4096)]
    for workers in ((0, 1) if SMALL else (4, 8, 16)):
        for decode_here in (False, True):
            name = f"loader alone {workers} workers" + (" decoding" if decode_here else "")
            if budget.allows(8):
                rate[name] = round(loader_alone(step, sample, texts, workers, batch_size, decode_here), 1)
                _say(model, name, rate[name])
    if budget.allows(5):
        rate["decode alone"] = round(decode_alone(step, refs, texts, batch_size, 2 if SMALL else 10), 1)
        _say(model, "decode alone", rate["decode alone"])
    # Compiled (CUDA only: the step compiles on CUDA), with the faster decode: the first run pays
    # the compile.
    fastest = max(harnesses, key=lambda name: rate.get(name, 0.0))
    if cuda and budget.allows(35):
        compiled = ClipScore(ClipScore.Params(**{**harnesses[fastest].step.params.model_dump(), "compile": True}))
        compiled.clip = step.clip
        compiled.prepare_model()
        harness_c = StepHarness(compiled, table, work / f"harness-{model}-compiled", "clip_score",
                                shard_size=count, setup=False)
        name = fastest + " compiled"
        started = time.perf_counter()
        try:
            harness_c.run()
            result["compile_warm_run_s"] = round(time.perf_counter() - started, 1)
            rate["model alone bf16 compiled"] = round(model_only(step.clip, batch_size, batches, dtype=step._dtype,
                                                                 encode_image=compiled._encode_image), 1)
            _say(model, "model alone bf16 compiled", rate["model alone bf16 compiled"])
            for _ in range(2):
                if budget.allows(1.5 * min(seconds_of.get(name) or [3.0])):
                    timed(name, harness_c)
        except Exception as error:  # a compile failure costs this variant only
            result["compiled_error"] = f"{type(error).__name__}: {str(error)[:300]}"
    reference = scores.get("step device bf16")
    result["max_score_difference"] = {name: float(np.max(np.abs(values - reference)))
                                      for name, values in scores.items()
                                      if reference is not None and name != "step device bf16"}
    best = max((v for k, v in rate.items() if k.startswith("step")), default=0.0)
    result["best_step_images_per_s"] = best
    result["best_step_share_of_model_alone_bf16"] = round(best / rate.get("model alone bf16", float("nan")), 3)
    return result


def gpu_tests(budget: Budget) -> dict[str, Any]:
    """The repository's GPU tests (tests/gpu: self-contained, no conftest, so the device needs
    neither duckdb nor hypothesis), in a child process with the part's time as its limit."""
    command = [sys.executable, "-m", "pytest", "--noconftest", "-m", "gpu", "-q", "-s", "-p", "no:randomly",
               "-p", "no:cacheprovider", "tests/gpu"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=max(10.0, budget.left()))
    except subprocess.TimeoutExpired as expired:
        return {"error": f"timed out after {expired.timeout:.0f}s", "output": str(expired.stdout or "")[-3000:]}
    return {"returncode": done.returncode, "output": (done.stdout + done.stderr)[-4000:]}


def run_part(name: str, seconds: float, out: Path) -> dict[str, Any]:
    """One module of benchmarks/gpu_parts in a child process (``python -m benchmarks.gpu_parts``)
    with a hard limit a little past its budget: a part that hangs, crashes or leaks GPU memory
    costs only its own seconds."""
    result_file = out / f"part_{name}.json"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "benchmarks.gpu_parts", name, "--seconds", f"{seconds:.0f}",
               "--out", str(out / name), "--json", str(result_file)] + (["--smoke"] if SMALL else [])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 20)
    except subprocess.TimeoutExpired as expired:
        return {"error": f"killed after {expired.timeout:.0f}s (its budget was {seconds:.0f}s)",
                "output": str(expired.stdout or "")[-2000:] + str(expired.stderr or "")[-2000:]}
    (out / f"part_{name}.log").write_text(done.stdout + done.stderr)
    if result_file.exists():
        try:
            return json.loads(result_file.read_text())
        except json.JSONDecodeError as error:
            return {"error": f"unreadable result {result_file}: {error}"}
    return {"error": f"exited {done.returncode} without a result", "output": (done.stdout + done.stderr)[-3000:]}


def main() -> None:
    import torch

    from benchmarks.gpu_parts import load_part, part_names

    out = Path(os.environ.get("OUT", "/tmp/gpu_session_out"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("GPU_SESSION_WORK", "/tmp/gpu_session_work"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(), "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor(),
        "cpus": os.cpu_count(), "small": SMALL, "budget_s": BUDGET_S,
    }
    try:
        import transformers

        report["transformers"] = transformers.__version__
    except ImportError:
        pass

    def save() -> None:
        (out / "gpu_session.json").write_text(json.dumps(report, indent=2, default=str))

    # SMALL: the shipped tiny CLIP in both slots (a ViT on two shared CPU cores takes minutes).
    b32, l14 = ("ViT-B-32", "ViT-L-14") if not SMALL else ("world-clip-tiny", "world-clip-tiny")
    # Seconds on an H200 (run 2 of 2026-12-04 took 0.3, 80, 105, 72, 30 and 24 s for the first six
    # sections when they measured more): what that run measured and does not change (the raw
    # open_clip loop, the eager decoder, SemDeDup at 1M and on the CPU) is not measured again.
    sections = [  # (name, seconds on an H200, the part)
        ("ceilings", 5, lambda b: ceilings(device)),
        ("clip ViT-B-32", 95, lambda b: clip_throughput(b32, 128 if SMALL else 16384, 32 if SMALL else 1024,
                                                        work, b)),
        ("clip ViT-L-14", 75, lambda b: clip_throughput(l14, 64 if SMALL else 8192, 16 if SMALL else 256, work, b)),
        # after clip: a failed CUDA graph capture can leave the CUDA generator unusable for the process
        ("decoder static+graphs vs fused", 70, decoder),
        ("semdedup torch", 25, semdedup),
        ("pytest -m gpu", 45, gpu_tests),
    ]
    parts = [(name, float(getattr(load_part(name), "SECONDS", 60))) for name in part_names()]
    only = os.environ.get("GPU_SESSION_ONLY")

    def start(name: str, seconds: float) -> bool:
        if only and only not in name:
            return False
        if session_left() < 10:
            report[name] = {"skipped": "session budget spent"}
            save()
            return False
        _say("start", name, f"(budget {seconds:.0f}s, session left {session_left():.0f}s)")
        return True

    def done(name: str, started: float) -> None:
        report.setdefault("section_seconds", {})[name] = round(time.perf_counter() - started, 1)
        save()
        _say("done", name, json.dumps(report[name], default=str)[:800])

    for name, seconds, section in sections:
        if not start(name, seconds):
            continue
        started = time.perf_counter()
        try:
            report[name] = section(Budget(seconds))
        except Exception as exc:  # one failing section must not cost the others (one device call)
            import traceback

            traceback.print_exc()
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
        done(name, started)
        if device == "cuda":
            torch.cuda.empty_cache()
    for name, seconds in parts:  # benchmarks/gpu_parts, by name, each in a child process
        key = f"part {name}"
        if not start(key, seconds):
            continue
        started = time.perf_counter()
        report[key] = run_part(name, max(5.0, min(seconds, session_left() - 5)), out)
        done(key, started)
    report["session_seconds"] = round(time.perf_counter() - STARTED, 1)
    save()
    print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
