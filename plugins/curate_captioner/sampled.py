"""On-policy preference pairs from a world: the captioner's own samples, judged by ground truth.

World pairs (``pairs.py``) make the rejected side by editing the faithful caption: one word the
captioner would seldom write, under a chosen caption in the annotator's words. Here both sides are
the captioner's: it samples ``samples`` captions per row (one decode seed each, at
``temperature``/``top_p``), the world's ground truth scores each, and a row whose samples are
right at least once and wrong at least once gives one pair: chosen = a right sample, rejected = a
wrong one. A row the captioner always gets right, or never, gives none (with
``annotator_chosen`` a row it never gets right pairs the annotator's caption with a sample). So
the pairs sit exactly on the mistakes the captioner makes (a wrong alt-text copied, a colour
misread), which is where on-policy preference tuning should have something to teach (on the world
captioner it did not: README, "Sweep 3").

A sample is *right* when it states every object's colour and shape, the right count and nothing
else, names the image's entity when the alt-text does, and names no entity the image lacks. A
wrong sample's kind says what it got wrong: an invented entity first (its logo is also a colour
and shape the image lacks), else its first failure in the order below. The rejected side is the
wrong sample whose kind comes first in this order, so attribute errors come first:

    sampled_wrong_attribute   mentions a (colour, shape) the image does not show
    sampled_object_missed     leaves out an object
    sampled_count             the wrong number of objects
    sampled_entity_dropped    leaves out the entity the alt-text names
    sampled_entity_invented   names an entity the image does not show

Pairs are ``textual`` (same image, same alt-text). The functions :func:`verdict` and
:func:`pick_pair` are pure, checked by hypothesis properties against the ground truth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from curate_captioner.errors import CaptionerError

KINDS = ("sampled_wrong_attribute", "sampled_object_missed", "sampled_count", "sampled_entity_dropped",
         "sampled_entity_invented")


def verdict(text: str, scene: Any, named: bool) -> str | None:
    """None when ``text`` is right about ``scene`` (``named``: the alt-text names the scene's
    entity, so the caption must too), else the kind of its failure (one of :data:`KINDS`)."""
    from curate_world.api import extract_attributes, score_caption

    score = score_caption(text or "", scene)
    if score.entity_hallucinated:  # an invented logo is also a (colour, shape) the image lacks: name the cause
        return "sampled_entity_invented"
    if score.pair_precision is not None and score.pair_precision < 1.0:
        return "sampled_wrong_attribute"
    if score.pair_recall < 1.0:
        return "sampled_object_missed"
    if score.count_error != 0:
        return "sampled_count"
    if named and scene.entity and scene.entity not in extract_attributes(text or "").entities:
        return "sampled_entity_dropped"
    return None


def pick_pair(samples: Sequence[str], verdicts: Sequence[str | None],
              fallback: str | None = None) -> tuple[str, str, str] | None:
    """(chosen, rejected, kind) from one row's samples and their verdicts, or None when none is
    wrong, or none is right and there is no ``fallback`` (a right caption written otherwise, the
    chosen side then). Chosen is the first right sample; rejected the first wrong sample of the
    earliest kind present."""
    right = [s for s, v in zip(samples, verdicts, strict=True) if v is None]
    wrong = [(KINDS.index(v), i) for i, v in enumerate(verdicts) if v is not None]
    if not wrong or not (right or fallback is not None):
        return None
    _, index = min(wrong)
    return (right[0] if right else str(fallback)), samples[index], str(verdicts[index])


def sampled_pairs(world_dir: str | Path, model: str, out_dir: str | Path, *, rows: int | None = 4000, samples: int = 4,
                  temperature: float = 0.7, top_p: float = 0.95, seed: int = 0, batch_size: int = 64,
                  annotator_chosen: bool = False, log: Callable[[str], None] = print) -> pl.DataFrame:
    """Sample ``samples`` captions for each of ``rows`` rows of a world (both splits; a seeded
    sample of them) from ``model``, write the pairs to ``out_dir/pairs.parquet``; also
    ``out_dir/samples.parquet``: every sample with its verdict (what the captioner gets wrong).
    ``annotator_chosen``: a row none of whose samples is right still gives a pair, with the
    annotator's faithful caption (the world pairs' chosen side) as chosen (``chosen_from``
    says which rows)."""
    import torch

    from curate_captioner.data import open_images, read_world
    from curate_captioner.evaluate import caption_rows
    from curate_captioner.model import Captioner
    from curate_captioner.pairs import caption, write_pairs
    from curate_world.api import Scene

    if samples < 2:
        raise CaptionerError(f"--samples {samples}: a pair needs at least two samples per row", "use --samples 4")
    if temperature <= 0:
        raise CaptionerError(f"--temperature {temperature}: greedy decoding gives the same caption every time",
                             "sample, e.g. --temperature 0.7")
    root = Path(world_dir).resolve()
    world = read_world(root).sort("world_id")
    if rows is not None and world.height > rows:
        world = world.sample(rows, seed=seed, shuffle=True).sort("world_id")
    scenes = [Scene.from_objects_json(o, b, t)
              for o, b, t in world.select("objects", "background", "texture").iter_rows()]
    paths = [str(root / p) for p in world["image_path"]]
    images = open_images(paths)
    missing = sum(image is None for image in images)
    if missing:
        raise CaptionerError(f"{missing} of {len(images)} images of {root} could not be read",
                             "regenerate the world (`curate world generate`)")
    alts = [a or "" for a in world["alt_text"].to_list()]
    named = [bool(n) for n in world["alt_mentions_entity"].to_list()]
    keys = world["world_id"].to_list()
    captioner = Captioner.load(model)
    drawn: list[list[str]] = []
    with torch.inference_mode():
        for k in range(samples):
            drawn.append(caption_rows(captioner, images, alts, keys, batch_size=batch_size, seed=seed + k,
                                      temperature=temperature, top_p=top_p, copy_bias=captioner.config.copy_bias))
            log(f"sample {k + 1}/{samples}: {len(drawn[-1])} captions")
    records, sample_rows = [], []
    for i, key in enumerate(keys):
        texts = [drawn[k][i] for k in range(samples)]
        verdicts = [verdict(t, scenes[i], named[i]) for t in texts]
        sample_rows.extend({"world_id": key, "sample": k, "caption": t, "verdict": v}
                           for k, (t, v) in enumerate(zip(texts, verdicts, strict=True)))
        scene = scenes[i]
        fallback = caption(scene, {scene.entity} if named[i] and scene.entity else set()) if annotator_chosen else None
        picked = pick_pair(texts, verdicts, fallback)
        if picked is not None:
            chosen, rejected, kind = picked
            records.append({"image": paths[i], "alt_text": alts[i], "chosen": chosen, "rejected": rejected,
                            "dimension": "textual", "kind": kind, "world_id": key,
                            "chosen_from": "sample" if chosen in texts else "annotator"})
    pairs = write_pairs(records, {"world_id": pl.Int64, "chosen_from": pl.Utf8}, out_dir)
    pl.DataFrame(sample_rows, schema={"world_id": pl.Int64, "sample": pl.Int64, "caption": pl.Utf8,
                                      "verdict": pl.Utf8}).write_parquet(Path(out_dir) / "samples.parquet")
    return pairs
