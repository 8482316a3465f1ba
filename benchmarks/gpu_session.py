"""The GPU numbers in one prepared run, for a session that is lent a device (one call, minutes).

    python -m benchmarks.gpu_session            # on the device: writes $OUT/gpu_session.json
    GPU_SESSION_SMALL=1 python -m benchmarks.gpu_session   # anywhere: tiny sizes, checks the script

What it measures, each against its ceiling or its raw-library baseline:

1. The device's two ceilings: device-to-device copy bandwidth (bytes read + written) and a bf16
   8192³ matrix product on random data.
2. ``clip_score`` images/s for ViT-B/32 and ViT-L/14 (random weights: throughput does not depend
   on them) through the step's shard code path (``run_shard_task``: image references read through
   curate.images, a DataLoader, text embeddings, the EmbeddingStore, Parquet out) against the
   fastest straightforward raw open_clip loop (a DataLoader with the same workers, pinned memory,
   open_clip's own transform, bf16 autocast), alternating, scores checked to agree; plus the model
   alone on device-resident tensors (the ceiling no loader can beat). Images are 256×256 JPEGs,
   the size img2dataset stores by default.
3. The realign decoder at OPT-1.3B size (``benchmarks.bench_captioner_roofline``, scale full)
   against its roofline: the lesser of the memory-bound and the matrix-rate-bound tokens/s.

SemDeDup on faiss-GPU is not here: faiss's GPU wheel (135 MB) and the CUDA 12 runtime it links
(cuBLAS alone is several hundred MB) do not fit in what a call may carry to an offline device.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

SMALL = os.environ.get("GPU_SESSION_SMALL") == "1"
WORKERS = int(os.environ.get("GPU_SESSION_WORKERS", str(min(16, os.cpu_count() or 1))))


def _say(*parts: Any) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


def ceilings(device: str) -> dict[str, float]:
    import torch

    from benchmarks.bench_captioner_roofline import copy_bandwidth, matmul_rate

    bandwidth = copy_bandwidth(device, 4096 if device == "cuda" else 64)
    cuda = device == "cuda"
    flops = matmul_rate(device, torch.bfloat16 if cuda else torch.float32, 8192 if cuda else 512)
    return {"copy_bandwidth_gb_per_s": round(bandwidth / 1e9, 1), "matmul_tflop_per_s": round(flops / 1e12, 1)}


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


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


def model_only(clip: Any, batch_size: int, batches: int) -> float:
    """Images/s of encode_image + encode_text on device-resident inputs: the loader-free ceiling."""
    import torch

    size = clip.model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    pixels = torch.randn(batch_size, 3, size, size, device=clip.device)
    tokens = clip.tokenizer(["a photo of a red circle next to a blue square"] * batch_size).to(clip.device)
    cuda = clip.device.startswith("cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    with torch.inference_mode(), autocast:
        for _ in range(2):
            clip.model.encode_image(pixels), clip.model.encode_text(tokens)
        _sync("cuda" if cuda else "cpu")
        started = time.perf_counter()
        for _ in range(batches):
            clip.model.encode_image(pixels), clip.model.encode_text(tokens)
        _sync("cuda" if cuda else "cpu")
    return batch_size * batches / (time.perf_counter() - started)


def clip_throughput(model: str, count: int, batch_size: int, work: Path, repeats: int) -> dict[str, Any]:
    import numpy as np
    import polars as pl

    from benchmarks.step_harness import StepHarness
    from curate.shards import iter_shard_files
    from curate_clip.score import ClipScore

    folder = image_folder(work / "images", count)
    keys = [f"{i:07d}" for i in range(count)]
    texts = [f"a photo number {i} of shapes on a gradient" for i in range(count)]
    table = pl.DataFrame({
        "uid": keys, "alt_text": texts,
        "image": [{"shard": str(folder), "key": key} for key in keys],
    })
    step = ClipScore(ClipScore.Params(model=model, batch_size=batch_size, workers=WORKERS, device="auto"))
    harness = StepHarness(step, table, work / f"harness-{model}", "clip_score", shard_size=count)
    clip = step.clip
    paths = [str(folder / f"{key}.jpg") for key in keys]

    ceiling = model_only(clip, batch_size, 8 if SMALL else 30)
    _say(model, "model alone", round(ceiling, 1), "img/s")
    raw_loop(clip, paths[: batch_size * 2], texts[: batch_size * 2], batch_size)  # warm kernels and workers
    times: dict[str, list[float]] = {"clip_score step": [], "raw open_clip loop": []}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name in times:
            _sync("cuda" if clip.device.startswith("cuda") else "cpu")
            started = time.perf_counter()
            if name == "raw open_clip loop":
                results[name] = raw_loop(clip, paths, texts, batch_size)
            else:
                out = harness.run()
                results[name] = pl.concat([pl.read_parquet(f) for f in iter_shard_files(out)])["clip_score"].to_numpy()
            times[name].append(time.perf_counter() - started)
            _say(model, name, round(count / times[name][-1], 1), "img/s")
    difference = float(np.max(np.abs(results["clip_score step"] - results["raw open_clip loop"])))
    best = {name: count / min(seconds) for name, seconds in times.items()}
    return {
        "model": model, "device": clip.device, "images": count, "batch_size": batch_size, "workers": WORKERS,
        "images_per_s": {name: round(value, 1) for name, value in best.items()},
        "model_alone_images_per_s": round(ceiling, 1),
        "step_over_raw": round(best["clip_score step"] / best["raw open_clip loop"], 3),
        "step_share_of_model_alone": round(best["clip_score step"] / ceiling, 3),
        "max_score_difference": difference,
        "seconds": times,
    }


def main() -> None:
    import torch

    out = Path(os.environ.get("OUT", "/tmp/gpu_session_out"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("GPU_SESSION_WORK", "/tmp/gpu_session_work"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(), "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor(),
        "cpus": os.cpu_count(), "small": SMALL,
    }

    def save() -> None:
        (out / "gpu_session.json").write_text(json.dumps(report, indent=2, default=str))

    sections = [
        ("ceilings", lambda: ceilings(device)),
        ("clip ViT-B-32", lambda: clip_throughput("ViT-B-32", 512 if SMALL else 32768, 64 if SMALL else 512,
                                                  work, 1 if SMALL else 2)),
        ("clip ViT-L-14", lambda: clip_throughput("ViT-L-14", 128 if SMALL else 8192, 32 if SMALL else 256,
                                                  work, 1 if SMALL else 2)),
        ("captioner roofline", lambda: _roofline("small" if SMALL else "full")),
    ]
    only = os.environ.get("GPU_SESSION_ONLY")
    for name, section in sections:
        if only and only not in name:
            continue
        _say("start", name)
        started = time.perf_counter()
        try:
            report[name] = section()
        except Exception as exc:  # one failing section must not cost the others (one device call)
            import traceback

            traceback.print_exc()
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
        report.setdefault("section_seconds", {})[name] = round(time.perf_counter() - started, 1)
        save()
        _say("done", name, json.dumps(report[name], default=str)[:600])
    print(json.dumps(report, indent=1, default=str))


def _roofline(scale: str) -> dict[str, Any]:
    from benchmarks.bench_captioner_roofline import run

    return run(scale)


if __name__ == "__main__":
    sys.exit(main())
