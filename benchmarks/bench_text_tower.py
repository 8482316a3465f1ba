"""The CLIP text tower on each text's own tokens (``curate_clip.text_tower``, what ``clip_score``
runs) against open_clip's ``encode_text`` on the padded context, on world alt-texts and their
minimal edits: texts/s per model, and the largest difference between the two's normalized
features (must stay below 1e-4).

Models: the shipped world CLIP (a 32-token context) and ViT-B-32's architecture with random
weights (OpenAI's 77-token context; the weights do not change the work). Same texts, batch size
and threads for both; they alternate within each repeat.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from benchmarks.bench_clip import _world_table
from benchmarks.measure import alternate, model_bench, median

ROWS = {"small": 300, "full": 2000}
TEXTS = {"small": 1024, "full": 4096}  # spread evenly over the alt-texts and their edits
MODELS = ("world-clip-tiny", "ViT-B-32")


def _encode(function: Any, ids: Any, batch_size: int) -> Any:
    import torch

    with torch.inference_mode():
        out = [function(ids[start:start + batch_size]) for start in range(0, len(ids), batch_size)]
        return torch.nn.functional.normalize(torch.cat(out).float(), dim=-1)


def run(scale: str) -> dict[str, Any]:
    from curate_clip.edits import minimal_edits, resolve_vocabulary
    from curate_clip.models import load_clip
    from curate_clip.text_tower import TextTower

    bench = model_bench(ROWS[scale])
    rows, batch_size, repeats, threads = bench.rows, bench.batch_size, bench.repeats, bench.threads

    vocabulary = resolve_vocabulary("world")
    alt_texts = [t for t in _world_table(rows)["alt_text"].to_list() if t]
    pool = alt_texts + [edit.text for t in alt_texts for edit in minimal_edits(t, vocabulary, 64)]
    count = min(len(pool), int(os.environ.get("CURATE_BENCH_TEXTS", TEXTS[scale])))
    texts = [pool[int(i)] for i in np.linspace(0, len(pool) - 1, count)]
    table, headline, notes = [], {}, []
    for model_name in MODELS:
        clip = load_clip(model_name, device="cpu")
        tower = TextTower(clip.model)
        ids = clip.tokenizer(texts)
        lengths = tower.lengths(ids).float()
        seconds, results = alternate({"encode_text": lambda: _encode(clip.model.encode_text, ids, batch_size),
                                      "text tower, trimmed": lambda: _encode(tower, ids, batch_size)}, repeats)
        difference = float((results["encode_text"] - results["text tower, trimmed"]).abs().max())
        if difference > 1e-4:
            raise AssertionError(f"{model_name}: trimmed features differ from encode_text's by {difference:.1e}")
        speed = {name: len(texts) / median(values) for name, values in seconds.items()}
        ratio = speed["text tower, trimmed"] / speed["encode_text"]
        headline[f"{model_name}: trimmed / encode_text throughput"] = round(ratio, 2)
        for name, values in seconds.items():
            table.append({"model": model_name, "path": name, "texts": len(texts),
                          "median seconds": round(median(values), 2), "texts/s": round(speed[name], 1),
                          "seconds per repeat": [round(v, 2) for v in values]})
        notes.append(f"{model_name}: context {ids.shape[1]}, mean bucketed length {lengths.mean():.1f} "
                     f"(end-of-text + 1, mean {float((ids.argmax(dim=-1) + 1).float().mean()):.1f}); "
                     f"features agree to {difference:.1e}; {tower.problem or 'trimmed'}")
    notes.append(f"{len(texts)} texts spread evenly over {len(alt_texts)} world alt-texts and their "
                 f"{len(pool) - len(alt_texts)} minimal edits; "
                 f"batch {batch_size}, torch threads {threads}, {repeats} alternating repeats, medians.")
    return {"headline": headline, "table": table, "notes": notes, "rows": len(texts)}


if __name__ == "__main__":
    import json

    print(json.dumps(run(os.environ.get("SCALE", "small")), indent=2, default=str))
