"""Choose a captioner's copy bias on a selection world and write it into the model.

``copy_bias`` adds a constant to the logits of the alt-text's own tokens at every decoding step
(no retraining): more bias copies more of the alt-text, which keeps names (entity retention) and
also copies a wrong alt-text's wrong words (attribute accuracy). The rule: the highest attribute
accuracy of realigned captions whose entity retention stays at or above ``min_retention``; ties go
to the smaller bias. It is chosen on a world other than the one the captioner is reported on, so
the reported split stays held out from every choice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from curate_captioner.errors import CaptionerError


def choose(results: Sequence[dict[str, Any]], min_retention: float) -> dict[str, Any]:
    """The result (``copy_bias``, ``attribute_accuracy``, ``entity_retention``) the rule picks."""
    allowed = [r for r in results if (r["entity_retention"] if r["entity_retention"] is not None else 1.0) >= min_retention]
    if not allowed:
        tried = ", ".join(f"{r['copy_bias']:g} -> {r['entity_retention']}" for r in results)
        raise CaptionerError(f"no copy bias keeps entity retention >= {min_retention} (tried {tried})",
                             "try smaller values, or a lower --min-retention")
    return max(allowed, key=lambda r: (r["attribute_accuracy"] or 0.0, -r["copy_bias"]))


def select_copy_bias(world_dir: str | Path, model_dir: str | Path, values: Sequence[float], *,
                     min_retention: float = 0.90, batch_size: int = 64, seed: int = 0,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Caption ``world_dir``'s val rows with each bias, pick one by the rule, and record it (and
    every result) in ``model_dir``'s captioner.json; returns the record."""
    import torch

    from curate_captioner.config import CONFIG_FILE, CaptionerConfig, resolve_model_path
    from curate_captioner.data import read_world
    from curate_captioner.evaluate import caption_rows, load_split, score_texts
    from curate_captioner.model import Captioner

    model_path = resolve_model_path(str(model_dir))
    if not values:
        raise CaptionerError("no copy bias values to try", "pass --values, e.g. 0,1,2,3")
    rows, scenes, images = load_split(Path(world_dir), read_world(Path(world_dir)), "val")
    alt = [a or "" for a in rows["alt_text"].to_list()]
    named, keys = rows["alt_mentions_entity"].to_list(), rows["world_id"].to_list()
    captioner = Captioner.load(model_path)
    results = []
    with torch.inference_mode():
        for value in values:
            texts = caption_rows(captioner, images, alt, keys, batch_size=batch_size, seed=seed, copy_bias=value)
            metrics = score_texts(texts, scenes, named, alt)
            results.append({"copy_bias": float(value), "attribute_accuracy": metrics["attribute_accuracy"],
                            "entity_retention": metrics["entity_retention"]})
            log(json.dumps(results[-1]))
    chosen = choose(results, min_retention)
    meta = json.loads((model_path / CONFIG_FILE).read_text())
    meta["captioner"] = CaptionerConfig(**{**meta["captioner"], "copy_bias": chosen["copy_bias"]}).model_dump(mode="json")
    record = {"chosen": chosen["copy_bias"], "rule": f"highest attribute accuracy with entity retention >= {min_retention}",
              "world": str(world_dir), "rows": rows.height, "seed": seed, "results": results}
    meta.setdefault("training", {})["copy_bias_selection"] = record
    (model_path / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return record
