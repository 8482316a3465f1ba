"""Score a captioner on a world's held-out rows against ground truth.

For each row of the split (``val``: scenes never trained on) three texts are scored with
:func:`curate_world.attributes.score_caption`: the raw alt-text, the realigned caption (image +
alt-text) and the no-alt-text caption (image only).

    attribute_accuracy   share of images whose caption states every object's shape and color and
                         the right number of objects, nothing else (pairs mentioned == pairs shown)
    pair_precision/recall  per object (color, shape) precision and recall, averaged over images
    entity_retention     alt-text names the image's entity → the caption keeps the name
    entity_invention     alt-text names no entity of the image → the caption names an entity that is
                         neither in the image nor in the alt-text (a hallucinated name)
    entity_recognized    the image shows an entity's logo, the alt-text does not name it → the
                         caption names it (recognition from pixels, not invention)
    clip_score           mean world-CLIP image–text cosine, when the clip plugin is installed
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from curate_captioner.config import MAX_NEW_TOKENS, TEMPERATURE, TOP_P


def caption_rows(captioner: Any, images: list[Any], prompts: list[str], keys: list[int], *, batch_size: int,
                 seed: int, temperature: float = TEMPERATURE, top_p: float = TOP_P,
                 max_new_tokens: int = MAX_NEW_TOKENS, copy_bias: float = 0.0,
                 guidance: tuple[float, float] = (1.0, 1.0), best_of: int = 1, static: bool | None = None,
                 progress: Callable[[int], None] | None = None) -> list[str]:
    """Captions of ``images`` in batches (the ``realign`` step's decoding): ``keys`` seed each row's
    sampling stream; ``progress(n)`` after each batch of n rows."""
    from curate_captioner.generate import decode, generate
    from curate_captioner.guidance import Guidance
    from curate_captioner.rerank import best_of_captions, check_best_of

    check_best_of(best_of, temperature)
    captions: list[str] = []
    for start in range(0, len(images), batch_size):
        batch_images = images[start : start + batch_size]
        prefix = captioner.prefix(*captioner.image_features(batch_images))

        def one_pass(run_seed: int, prefix: Any = prefix, start: int = start) -> list[str]:
            ids = generate(captioner, prefix, prompts[start : start + batch_size], max_new_tokens=max_new_tokens,
                           temperature=temperature, top_p=top_p, seed=run_seed, row_keys=keys[start : start + batch_size],
                           copy_bias=copy_bias, guidance=Guidance(*guidance), static=static)
            return decode(captioner, ids)

        captions.extend(best_of_captions(batch_images, one_pass, best_of=best_of, seed=seed))
        if progress is not None:
            progress(len(batch_images))
    return captions


def score_texts(texts: list[str], scenes: list[Any], alt_names_entity: list[bool], alt_texts: list[str]) -> dict[str, Any]:
    from curate_world.api import extract_attributes, score_caption

    exact, precision, recall, count_ok = [], [], [], []
    retained, invented, recognized, hallucinated = [], [], [], []
    for text, scene, named, alt in zip(texts, scenes, alt_names_entity, alt_texts, strict=True):
        score = score_caption(text or "", scene)
        precision.append(score.pair_precision if score.pair_precision is not None else 0.0)
        recall.append(score.pair_recall)
        exact.append(score.pair_precision == 1.0 and score.pair_recall == 1.0 and score.count_error == 0)
        count_ok.append(score.count_error == 0)
        names = set(extract_attributes(text or "").entities)
        if named:
            retained.append(scene.entity in names)
        else:
            alt_names = set(extract_attributes(alt or "").entities)
            # Invented: a name neither the image shows (its entity's logo is drawn in it) nor the
            # alt-text gives. Naming the image's own entity from its logo is recognition, counted
            # apart; an entity only an unrelated alt-text names is `names_entity_not_in_image`.
            invented.append(bool(names - alt_names - {scene.entity}))
            if scene.entity is not None:
                recognized.append(scene.entity in names)
        hallucinated.append(score.entity_hallucinated)
    share = lambda values: round(sum(values) / len(values), 4) if values else None  # noqa: E731
    return {
        "attribute_accuracy": share(exact),
        "pair_precision": share(precision),
        "pair_recall": share(recall),
        "count_accuracy": share(count_ok),
        "entity_retention": share(retained),
        "entity_retention_rows": len(retained),
        "entity_invention": share(invented),
        "entity_invention_rows": len(invented),
        "entity_recognized": share(recognized),
        "entity_recognized_rows": len(recognized),
        "names_entity_not_in_image": share(hallucinated),
    }


def clip_scores(images: list[Any], texts: list[str]) -> list[float] | None:
    """World-CLIP cosine per (image, text), or None when the clip plugin is not installed."""
    from curate_captioner.errors import CaptionerError
    from curate_captioner.worldclip import world_clip_scores

    try:
        return world_clip_scores(images, texts)
    except CaptionerError:  # curate_clip or its weights are not installed
        return None


def load_split(root: Path, world: pl.DataFrame, split: str,
               limit: int | None = None) -> tuple[pl.DataFrame, list[Any], list[Any]]:
    """The rows of ``split`` (by world_id) of the world at ``root`` (its table: ``world``), their
    ground-truth scenes and opened images."""
    from curate_world.api import Scene

    from curate_captioner.data import open_images
    from curate_captioner.errors import CaptionerError

    rows = world.filter(pl.col("split") == split).sort("world_id")
    if limit is not None:
        rows = rows.head(limit)
    if rows.height == 0:
        raise CaptionerError(f"world {root} has no '{split}' rows", "pick a split the world has (train, val)")
    scenes = [Scene.from_objects_json(o, b, t) for o, b, t in rows.select("objects", "background", "texture").iter_rows()]
    return rows, scenes, open_images([str(root / p) for p in rows["image_path"]])


def unseen_rows(world: pl.DataFrame, rows: pl.DataFrame) -> list[int]:
    """Positions of ``rows`` whose scene (objects, background, texture) no train row of ``world`` shows."""
    from curate_captioner.data import scene_content

    trained = scene_content(world.filter(pl.col("split") == "train")).implode()
    return [i for i, seen in enumerate(scene_content(rows).is_in(trained).to_list()) if not seen]


def evaluate_world(world_dir: str | Path, model: str = "world", *, split: str = "val", limit: int | None = None,
                   batch_size: int = 64, seed: int = 0, log: Callable[[str], None] = print,
                   copy_bias: float | None = None) -> dict[str, Any]:
    import torch

    from curate_captioner.data import read_world
    from curate_captioner.model import Captioner

    root = Path(world_dir)
    world = read_world(root)
    rows, scenes, images = load_split(root, world, split, limit)
    alt = [a or "" for a in rows["alt_text"].to_list()]
    named = rows["alt_mentions_entity"].to_list()
    keys = rows["world_id"].to_list()
    captioner = Captioner.load(model)
    started = time.perf_counter()
    with torch.inference_mode():
        copy_bias = captioner.config.copy_bias if copy_bias is None else copy_bias
        realigned = caption_rows(captioner, images, alt, keys, batch_size=batch_size, seed=seed, copy_bias=copy_bias)
        realign_seconds = time.perf_counter() - started
        no_alt = caption_rows(captioner, images, [""] * len(images), keys, batch_size=batch_size, seed=seed)
    log(f"captioned {len(images)} rows twice in {time.perf_counter() - started:.1f}s")
    modes = {"alt_text": alt, "realigned": realigned, "no_alt_text": no_alt}
    metrics = {mode: score_texts(texts, scenes, named, alt) for mode, texts in modes.items()}
    scored = {mode: clip_scores(images, texts) for mode, texts in modes.items()}
    for mode, values in scored.items():
        metrics[mode]["clip_score"] = None if values is None else round(sum(values) / len(values), 4)
    by_noise = {}
    for noise in sorted(set(rows["noise_type"].to_list())):
        pick = [i for i, n in enumerate(rows["noise_type"].to_list()) if n == noise]
        by_noise[noise] = {
            mode: score_texts([texts[i] for i in pick], [scenes[i] for i in pick], [named[i] for i in pick],
                              [alt[i] for i in pick])["attribute_accuracy"]
            for mode, texts in modes.items()
        }
    # Simple scenes recur (one object on a plain background): a held-out row can show a scene some
    # train row also shows. Scored apart, so the numbers on scenes never trained on are known too.
    unseen = unseen_rows(world, rows)
    on_unseen = {mode: score_texts([texts[i] for i in unseen], [scenes[i] for i in unseen], [named[i] for i in unseen],
                                   [alt[i] for i in unseen])["attribute_accuracy"] for mode, texts in modes.items()}
    summary = {
        "world": str(root), "split": split, "rows": rows.height, "model": captioner.name,
        "unseen_scenes": {"rows": len(unseen), "attribute_accuracy": on_unseen},
        "decoding": {"temperature": TEMPERATURE, "top_p": TOP_P, "max_new_tokens": MAX_NEW_TOKENS, "seed": seed,
                     "copy_bias": copy_bias},
        "metrics": metrics, "attribute_accuracy_by_noise_type": by_noise,
        "clip_scorer": "world CLIP (curate_clip)" if scored["realigned"] is not None else "not available: curate_clip or its world CLIP weights are not installed",
        "realign_captions_per_second": round(len(images) / realign_seconds, 1),
    }
    realigned_metrics, alt_metrics = metrics["realigned"], metrics["alt_text"]
    summary["acceptance"] = {
        "attribute_accuracy >= 0.95": (realigned_metrics["attribute_accuracy"] or 0) >= 0.95,
        "entity_retention >= 0.90": (realigned_metrics["entity_retention"] or 0) >= 0.90,
        "clip_score realigned > alt_text": None if realigned_metrics["clip_score"] is None
        else realigned_metrics["clip_score"] > alt_metrics["clip_score"],
    }
    examples = [{"alt_text": alt[i], "realigned": realigned[i], "no_alt_text": no_alt[i],
                 "truth": rows["description"][i], "noise_type": rows["noise_type"][i]} for i in range(min(12, rows.height))]
    return {"summary": summary, "examples": examples}


def write_report(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "EVAL.json").write_text(json.dumps(result, indent=2) + "\n")
    summary, metrics = result["summary"], result["summary"]["metrics"]
    names = [("attribute_accuracy", "attribute accuracy (every object's shape+color, right count)"),
             ("pair_precision", "(color, shape) precision"), ("pair_recall", "(color, shape) recall"),
             ("count_accuracy", "object count right"), ("entity_retention", "entity retention (alt-text names it)"),
             ("entity_invention", "entity invented (in neither image nor alt-text)"),
             ("entity_recognized", "image's entity named from its logo (alt-text names none)"),
             ("names_entity_not_in_image", "names an entity not in the image"), ("clip_score", "mean world-CLIP score")]
    lines = [
        "# World captioner evaluation", "",
        f"World `{summary['world']}`, split `{summary['split']}` ({summary['rows']} rows of held-out scene ids), "
        f"model `{summary['model']}`, sampling T={summary['decoding']['temperature']} top-p={summary['decoding']['top_p']} "
        f"copy bias {summary['decoding'].get('copy_bias', 0.0)} seed {summary['decoding']['seed']}. CLIP scorer: {summary['clip_scorer']}.", "",
        "| metric | raw alt-text | realigned | no alt-text |", "|---|---|---|---|",
    ]
    for key, label in names:
        cells = [metrics[m].get(key) for m in ("alt_text", "realigned", "no_alt_text")]
        lines.append(f"| {label} | " + " | ".join("–" if c is None else f"{c:.4f}" if isinstance(c, float) else str(c) for c in cells) + " |")
    lines += ["", "Acceptance: " + ", ".join(f"{name}: {'pass' if ok else 'FAIL' if ok is False else 'not measured'}"
                                          for name, ok in summary["acceptance"].items()) + "."]
    unseen = summary.get("unseen_scenes")
    if unseen:
        lines += ["", f"On the {unseen['rows']} of {summary['rows']} rows whose scene no train row shows (simple scenes "
                  "recur), attribute accuracy is " + ", ".join(f"{m.replace('_', ' ')} {v:.4f}" for m, v in
                                                            unseen["attribute_accuracy"].items() if v is not None) + "."]
    lines += ["", f"Entity retention over {metrics['realigned']['entity_retention_rows']} rows whose alt-text names the "
              f"image's entity; invention over {metrics['realigned']['entity_invention_rows']} rows whose alt-text names none of it.",
              "", "## Attribute accuracy by alt-text noise type", "", "| noise type | raw alt-text | realigned | no alt-text |", "|---|---|---|---|"]
    for noise, values in summary["attribute_accuracy_by_noise_type"].items():
        lines.append(f"| {noise} | " + " | ".join(f"{values[m]:.3f}" for m in ("alt_text", "realigned", "no_alt_text")) + " |")
    lines += ["", "## Examples", ""]
    for example in result["examples"]:
        lines += [f"- **{example['noise_type']}** alt-text: `{example['alt_text']}`",
                  f"  - realigned: {example['realigned']}", f"  - no alt-text: {example['no_alt_text']}",
                  f"  - truth: {example['truth']}"]
    (out / "EVAL.md").write_text("\n".join(lines) + "\n")
