"""The GPU numbers in one prepared run, for a session that is lent a device (one call, minutes).

    bash benchmarks/gpu_device.sh               # on the device: unpacks the carried wheels, runs this
    python -m benchmarks.gpu_session            # writes $OUT/gpu_session.json
    GPU_SESSION_SMALL=1 python -m benchmarks.gpu_session   # anywhere: tiny sizes, checks the script

What it measures, in this order (what the last session could not measure first):

1. The device's two ceilings: device-to-device copy bandwidth (bytes read + written) and a bf16
   8192³ matrix product on random data.
2. The realign decoder at OPT-1.3B size (random weights, bf16, 192 new tokens): the eager loop
   (DynamicCache) against the static KV cache with the decode step replayed as a CUDA graph
   (``curate_captioner.generate_static``), at batch 1, 32 and 256, each batch size warmed once,
   against its roofline (the lesser of the memory-bound and the matmul-bound tokens/s).
3. SemDeDup with the torch backend (no faiss-gpu) on 10M × 512 clustered float16 embeddings with
   planted near-duplicates, and on 1M on the GPU and on the CPU cores (the ratio).
4. The repository's GPU tests (``pytest --noconftest -m gpu tests/gpu``).
5. ``clip_score`` images/s for ViT-B/32 and ViT-L/14 (random weights: throughput does not depend
   on them) through the step's shard code path (``run_shard_task``): ``decode: loader`` (PIL in the
   workers) and ``decode: device`` (nvjpeg), with autocast and with bf16 weights; against the raw
   open_clip loop (a DataLoader with open_clip's own transform, autocast, the same workers) and the
   model alone on device-resident tensors; the paths' scores compared. 256×256 JPEGs.


Every part has a time budget (the whole stays under ``GPU_SESSION_BUDGET``, 400 s on a device)
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


class Files:
    """The raw baseline's dataset: what a user writes around open_clip's transform."""

    def __init__(self, paths: list[str], preprocess: Any):
        self.paths, self.preprocess = paths, preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Any:
        from PIL import Image

        return self.preprocess(Image.open(self.paths[index]).convert("RGB"))


def raw_loop(clip: Any, paths: list[str], texts: list[str], batch_size: int) -> Any:
    """open_clip the way a user writes it: its transform in the workers, float32 weights, autocast."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    cuda = clip.device.startswith("cuda")
    loader = DataLoader(Files(paths, clip.preprocess), batch_size=batch_size, num_workers=WORKERS,
                        pin_memory=cuda, prefetch_factor=4 if WORKERS else None)
    scores, start = [], 0
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    for pixels in loader:
        tokens = clip.tokenizer(texts[start : start + len(pixels)])
        start += len(pixels)
        with torch.inference_mode(), autocast:
            image = clip.model.encode_image(pixels.to(clip.device, non_blocking=cuda))
            text = clip.model.encode_text(tokens.to(clip.device, non_blocking=cuda))
        image = torch.nn.functional.normalize(image.float(), dim=-1)
        text = torch.nn.functional.normalize(text.float(), dim=-1)
        scores.append((image * text).sum(-1).cpu().numpy())
    return np.concatenate(scores)




def model_only(clip: Any, batch_size: int, batches: int, dtype: Any = None) -> float:
    """Images/s of encode_image + encode_text on device-resident inputs: the loader-free ceiling.
    ``dtype``: the weights' dtype (bf16: no autocast); None: float32 weights under autocast."""
    import torch

    size = clip.model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    cuda = clip.device.startswith("cuda")
    pixels = torch.randn(batch_size, 3, size, size, device=clip.device, dtype=dtype or torch.float32)
    tokens = clip.tokenizer(["a photo of a red circle next to a blue square"] * batch_size).to(clip.device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype is None) if cuda \
        else torch.autocast("cpu", enabled=False)
    with torch.inference_mode(), autocast:
        for _ in range(2):
            clip.model.encode_image(pixels), clip.model.encode_text(tokens)
        _sync(clip.device)
        started = time.perf_counter()
        for _ in range(batches):
            clip.model.encode_image(pixels), clip.model.encode_text(tokens)
        _sync(clip.device)
    return batch_size * batches / (time.perf_counter() - started)


def clip_throughput(model: str, count: int, batch_size: int, work: Path, budget: Budget,
                    compile_too: bool = False) -> dict[str, Any]:
    import numpy as np
    import polars as pl
    import torch

    from benchmarks.step_harness import StepHarness
    from curate.shards import iter_shard_files
    from curate_clip.score import ClipScore

    folder = image_folder(work / "images", count)
    keys = [f"{i:07d}" for i in range(count)]
    texts = [f"a photo number {i} of shapes on a gradient" for i in range(count)]
    table = pl.DataFrame({"uid": keys, "alt_text": texts,
                          "image": [{"shard": str(folder), "key": key} for key in keys]})
    paths = [str(folder / f"{key}.jpg") for key in keys]
    torch.manual_seed(0)
    variants = {  # name → params; the first loads the model, the rest share it
        "step loader autocast": {"decode": "loader", "precision": "autocast"},
        "step device autocast": {"decode": "device", "precision": "autocast"},
        "step loader bf16": {"decode": "loader", "precision": "bf16"},
        "step device bf16": {"decode": "device", "precision": "bf16"},
    }
    if compile_too:
        variants["step device bf16 compiled"] = {"decode": "device", "precision": "bf16", "compile": True}
    first = None
    harnesses = {}
    for name, options in variants.items():
        step = ClipScore(ClipScore.Params(model=model, batch_size=batch_size, workers=WORKERS, device="auto",
                                          **options))
        if first is None:
            first = step
            harnesses[name] = StepHarness(step, table, work / f"harness-{model}-{len(harnesses)}", "clip_score",
                                          shard_size=count)
        else:
            step.clip = first.clip
            if step.params.precision != "bf16":
                step.prepare_model()  # the bf16 ones cast the shared model later, after the autocast runs
            harnesses[name] = StepHarness(step, table, work / f"harness-{model}-{len(harnesses)}", "clip_score",
                                          shard_size=count, setup=False)
    clip = first.clip
    result: dict[str, Any] = {"model": model, "device": clip.device, "images": count, "batch_size": batch_size,
                              "workers": WORKERS, "images_per_s": {}, "seconds": {}}
    rate, seconds_of = result["images_per_s"], result["seconds"]
    scores: dict[str, Any] = {}

    def measure(names: list[str], more_to_come: bool) -> None:
        """Each variant, alternating, twice where the budget allows (the best run counts); with
        ``more_to_come`` a repeat leaves as much time as the first pass took for what follows."""
        reserve = 0.0
        for repeat in range(2):
            if repeat and more_to_come:
                reserve = sum(min(seconds_of.get(name) or [0.0]) for name in names)
            for name in names:
                need = 90.0 if "compiled" in name and not repeat else 1.5 * min(seconds_of.get(name) or [2.0])
                need += reserve if repeat else 0.0
                if not budget.allows(need):
                    seconds_of.setdefault(name, [])
                    continue
                _sync(clip.device)
                started = time.perf_counter()
                if name == "raw open_clip loop":
                    scores[name] = raw_loop(clip, paths, texts, batch_size)
                else:
                    out = harnesses[name].run()
                    frame = pl.concat([pl.read_parquet(f) for f in iter_shard_files(out)])
                    scores[name] = frame["clip_score"].to_numpy()
                seconds_of.setdefault(name, []).append(round(time.perf_counter() - started, 2))
                rate[name] = round(count / min(seconds_of[name]), 1)
                _say(model, name, rate[name], "img/s")

    # float32 weights under autocast (the raw loop's and the step's default), then bf16 weights.
    rate["model alone autocast"] = round(model_only(clip, batch_size, 2 if SMALL else 30), 1)
    _say(model, "model alone autocast", rate["model alone autocast"])
    raw_loop(clip, paths[: batch_size * 2], texts[: batch_size * 2], batch_size)  # warm kernels and workers
    measure(["raw open_clip loop", "step loader autocast", "step device autocast"], more_to_come=True)
    bf16 = [name for name in variants if "bf16" in name]
    for name in bf16:
        harnesses[name].step.prepare_model()  # the first casts the shared model; the rest find it cast
    rate["model alone bf16"] = round(model_only(clip, batch_size, 2 if SMALL else 30,
                                                dtype=harnesses[bf16[0]].step._dtype), 1)
    _say(model, "model alone bf16", rate["model alone bf16"])
    measure(bf16, more_to_come=False)
    reference = scores.get("step loader autocast")
    result["max_score_difference"] = {
        name: float(np.max(np.abs(values - reference))) for name, values in scores.items()
        if reference is not None and name != "step loader autocast"
    }
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
        ("clip ViT-B-32", 70, lambda b: clip_throughput(b32, 128 if SMALL else 32768, 32 if SMALL else 1024,
                                                        work, b)),
        ("clip ViT-L-14", 55, lambda b: clip_throughput(l14, 64 if SMALL else 8192, 16 if SMALL else 256, work, b)),
        # after clip: a failed CUDA graph capture can leave the CUDA generator unusable for the process
        ("decoder static+graphs vs fused", 70, decoder),
        ("semdedup torch", 25, semdedup),
        ("pytest -m gpu", 30, gpu_tests),
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
