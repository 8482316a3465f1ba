"""What ``clip_score``'s ``edits: world`` costs on a GPU, with a ViT-B/32-sized text tower.

Each world alt-text has ~30 minimal edits (one colour, shape or count changed), each one more pass
through the text tower, so with edits the text tower, not the image tower, bounds the step. This
part runs the step through the engine's shard path (``benchmarks.step_harness``) on world rows
(64 px images, upscaled by the model's own preprocessing), with and without edits, alternating:
rows/s each way, the edit texts per second, and the ratio. ViT-B/32 has random weights (speed does
not depend on them; the world vocabulary's edits are the same texts for any model).

    python -m benchmarks.gpu_parts clip_edits --smoke      # here: 64 rows, the world CLIP, CPU
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

SECONDS = 70
ROWS, SMOKE_ROWS = 4000, 64


def run(out: Path, seconds: float, smoke: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    import polars as pl
    import torch

    from benchmarks.bench_clip import _world_table
    from benchmarks.step_harness import StepHarness
    from curate.shards import iter_shard_files
    from curate_clip.edits import minimal_edits, resolve_vocabulary
    from curate_clip.score import ClipScore

    cuda = torch.cuda.is_available() and not smoke
    model = "ViT-B-32" if cuda else "world-clip-tiny"
    rows = SMOKE_ROWS if smoke else ROWS
    table = _world_table(rows).drop("path")
    vocabulary = resolve_vocabulary("world")
    edits = sum(len(minimal_edits(t or "", vocabulary, 64)) for t in table["alt_text"].to_list())
    common = {"model": model, "device": "cuda" if cuda else "cpu", "batch_size": 512 if cuda else 64,
              "workers": 8 if cuda else 0, "store_embeddings": False}
    if cuda:
        common.update({"decode": "loader", "precision": "bf16"})
    plain = ClipScore(ClipScore.Params(**common))
    harness = {"plain": StepHarness(plain, table, out / "clip_edits" / "plain", "clip_score", shard_size=2000)}
    edited = ClipScore(ClipScore.Params(**common, edits="world"))
    edited.clip = plain.clip  # one loaded model for both
    edited.vocabulary = vocabulary
    edited.prepare_model()
    harness["edits"] = StepHarness(edited, table, out / "clip_edits" / "edits", "clip_score", shard_size=2000,
                                   setup=False)
    result: dict[str, Any] = {"model": plain.clip.name, "device": plain.clip.device, "rows": rows,
                              "edits_per_row": round(edits / rows, 1), "seconds": {"plain": [], "edits": []}}
    harness["plain"].run()  # warm-up: CUDA context, kernels, the DataLoader
    outputs: dict[str, Path] = {}
    for _ in range(3):
        for name in ("plain", "edits"):
            if time.perf_counter() - started > 0.85 * seconds and result["seconds"]["edits"]:
                break
            begin = time.perf_counter()
            outputs[name] = harness[name].run()
            if cuda:
                torch.cuda.synchronize()
            result["seconds"][name].append(round(time.perf_counter() - begin, 3))
    margins = (pl.concat([pl.read_parquet(f) for f in iter_shard_files(outputs["edits"])])
               if "edits" in outputs else None)
    best = {name: min(times) for name, times in result["seconds"].items() if times}
    if "edits" in best:
        result["rows_per_s"] = {name: round(rows / s, 1) for name, s in best.items()}
        result["edit_texts_per_s"] = round(edits / max(best["edits"] - best["plain"], 1e-9), 1)
        result["edits_cost_x"] = round(best["edits"] / best["plain"], 2)
    if margins is not None and "clip_edit_margin" in margins.columns:
        result["rows_with_a_margin"] = int(margins["clip_edit_margin"].is_not_null().sum())
    return result
