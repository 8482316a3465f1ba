"""Preference pairs from a generated world, for free: the world knows what every image shows.

A pair table (``pairs.parquet``) has TRL's DPO columns where they fit, plus the conditioning of
each side (a visual pair changes the image, a cross-modal pair the alt-text, with the same caption):

    image              the image (a local path)                        TRL: images
    alt_text           the prompt: the image's alt-text                 TRL: prompt
    chosen             the preferred caption                            TRL: chosen
    rejected           the dispreferred caption                         TRL: rejected
    dimension          textual | visual | cross_modal                   (MCM-DPO's loss per dimension)
    rejected_image     the rejected side's image (null: ``image``)
    rejected_alt_text  the rejected side's alt-text (null: ``alt_text``)
    kind               how the rejected side was made (below); optional for a user's table

chosen is always the faithful realignment (the annotator's caption: every object, the entity named
when the alt-text names the right one). Rejected, along one dimension only:

    textual      wrong_attribute  one object's color or shape wrong
                 entity_dropped   the entity the alt-text names is left unnamed
                 entity_invented  a logo of an entity that is not in the image is added
                 object_missed    one (non-logo) object is left out
    visual       near_miss_image  the same caption, under the image of a scene that differs in one
                                  object's color or shape (rendered here)
    cross_modal  other_alt_text   the same caption, under the alt-text of another scene's image

With ``balance_kinds`` every applicable textual kind is made for every row, and then each kind is cut
to the count of the rarest one (:func:`balance_textual`), so each textual kind is the same share of
the textual pairs. Without it a row gets one textual pair of a random applicable kind, and
``entity_invented`` (applicable to nearly every scene) outnumbers ``entity_dropped`` (only rows whose
alt-text names the image's entity) about six to one: the model learns that writing a name is risky.

The pure functions here (no torch) are checked against ground truth by hypothesis properties.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate_captioner.errors import CaptionerError
from curate_captioner.preference import DIMENSIONS

TEXTUAL_KINDS = ("wrong_attribute", "entity_dropped", "entity_invented", "object_missed")
PAIRS_FILE = "pairs.parquet"
PAIR_IMAGE_DIR = "images"
PAIR_COLUMNS = ("image", "alt_text", "chosen", "rejected", "dimension")
OPTIONAL_COLUMNS = ("rejected_image", "rejected_alt_text")


def caption(scene: Any, named: set[str]) -> str:
    """The realigned-caption sentence of ``scene``, naming exactly the entities in ``named``."""
    from curate_world.api import describe_object, join_phrases
    from curate_world.api import sentence_case
    from curate_world.api import TEXTURES

    objects = join_phrases([describe_object(o, name_entity=o.entity in named) for o in scene.objects])
    return sentence_case(f"{objects}, on a {TEXTURES[scene.texture]} {scene.background} background") + "."


def _plain(scene: Any) -> list[int]:
    return [i for i, o in enumerate(scene.objects) if o.entity is None]


def wrong_attribute(scene: Any, rng: np.random.Generator) -> Any | None:
    """``scene`` with one non-logo object's color or shape changed (None: no such object)."""
    from dataclasses import replace

    from curate_world.api import Scene
    from curate_world.api import COLORS, SHAPES

    plain = _plain(scene)
    if not plain:
        return None
    index = plain[int(rng.integers(len(plain)))]
    obj = scene.objects[index]
    if rng.random() < 0.5:
        options = [c for c in COLORS if c != obj.color]
        changed = replace(obj, color=options[int(rng.integers(len(options)))])
    else:
        options = [s for s in SHAPES if s != obj.shape]
        changed = replace(obj, shape=options[int(rng.integers(len(options)))])
    objects = list(scene.objects)
    objects[index] = changed
    return Scene(tuple(objects), scene.background, scene.texture)


def object_missed(scene: Any, rng: np.random.Generator) -> Any | None:
    """``scene`` less one non-logo object (None: fewer than two objects)."""
    from curate_world.api import Scene

    plain = _plain(scene)
    if len(scene.objects) < 2 or not plain:
        return None
    drop = plain[int(rng.integers(len(plain)))]
    return Scene(tuple(o for i, o in enumerate(scene.objects) if i != drop), scene.background, scene.texture)


def entity_invented(scene: Any, rng: np.random.Generator) -> Any | None:
    """``scene`` plus the logo of an entity it does not show, at a free position."""
    from curate_world.api import Scene, entity_logo, sorted_objects
    from curate_world.api import ENTITIES, POSITIONS

    free = [p for p in POSITIONS if p not in {o.position for o in scene.objects}]
    entities = [e.name for e in ENTITIES if e.name != scene.entity]
    if not free:
        return None
    logo = entity_logo(entities[int(rng.integers(len(entities)))], free[int(rng.integers(len(free)))],
                       size=("small", "medium", "large")[int(rng.integers(3))])
    return Scene(sorted_objects([*scene.objects, logo]), scene.background, scene.texture)


def textual_rejection(scene: Any, named: bool, kind: str, rng: np.random.Generator) -> str | None:
    """The rejected caption of ``kind`` for a scene whose chosen caption names its entity iff
    ``named``; None when the kind does not apply (no entity to drop, one object only, …)."""
    names = {scene.entity} if named and scene.entity else set()
    if kind == "entity_dropped":
        return caption(scene, set()) if names else None
    changed = {"wrong_attribute": wrong_attribute, "object_missed": object_missed,
               "entity_invented": entity_invented}[kind](scene, rng)
    if changed is None:
        return None
    if kind == "entity_invented":  # the invented logo is named: that is the invention
        names |= {o.entity for o in changed.objects if o.entity is not None and o.entity != scene.entity}
    return caption(changed, names)


def balance_textual(candidates: Sequence[tuple[int, str]], seed: int = 0) -> set[tuple[int, str]]:
    """Which of the candidate textual pairs ``(row, kind)`` to keep so that every kind present keeps
    as many as the rarest kind has: a seeded uniform sample of each kind's rows. (Keeping first the
    rows that hold the rarest kind's pair, which puts every ``entity_invented`` pair on a scene whose
    own entity is named, cost entity names on held-out worlds: README, "Sweep 2".)"""
    by_kind: dict[str, list[int]] = {}
    for row, kind in candidates:
        by_kind.setdefault(kind, []).append(row)
    if not by_kind:
        return set()
    cap = min(len(rows) for rows in by_kind.values())
    rng = np.random.default_rng([seed, 2])
    keep: set[tuple[int, str]] = set()
    for kind in sorted(by_kind):
        rows = sorted(set(by_kind[kind]))
        keep |= {(rows[i], kind) for i in rng.permutation(len(rows))[:cap].tolist()}
    return keep


def world_pairs(world_dir: str | Path, out_dir: str | Path, *, dimensions: Sequence[str] = DIMENSIONS,
                rows: int | None = 4000, split: str = "train", seed: int = 0, balance_kinds: bool = False) -> pl.DataFrame:
    """One pair per dimension for each of ``rows`` sampled realigned rows of the world's ``split``;
    writes ``out_dir/pairs.parquet`` and the visual pairs' near-miss images under ``out_dir/images``.
    ``balance_kinds``: a textual pair of every applicable kind per row, each kind then cut to the
    rarest kind's count (:func:`balance_textual`); the visual and cross-modal pairs are the same
    as without it."""
    from curate_world.api import encode_image, render_scene
    from curate_world.api import Scene
    from curate_world.api import REALIGNED_FILE, WORLD_FILE

    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown or not dimensions:
        raise CaptionerError(f"unknown preference dimension(s) {unknown or dimensions}", f"use some of {', '.join(DIMENSIONS)}")
    root = Path(world_dir).resolve()
    if not (root / REALIGNED_FILE).exists():
        raise CaptionerError(f"{root} is not a generated world with realigned captions (no {REALIGNED_FILE})",
                             "run `curate world generate DIR --realign-fraction 1.0` first")
    world = pl.read_parquet(root / WORLD_FILE)
    realigned = pl.read_parquet(root / REALIGNED_FILE).select("world_id", "caption")
    table = (world.join(realigned, on="world_id", how="inner").filter(pl.col("split") == split).sort("world_id"))
    if rows is not None and table.height > rows:
        table = table.sample(rows, seed=seed, shuffle=True).sort("world_id")
    out = Path(out_dir)
    (out / PAIR_IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    alts = table["alt_text"].to_list()
    scene_ids = table["scene_id"].to_list()
    # (rejected_scene: the scene the rejected side's image or alt-text belongs to, for checking)
    records: list[dict[str, Any]] = []
    for index, row in enumerate(table.iter_rows(named=True)):
        rng = np.random.default_rng([seed, int(row["world_id"])])
        scene = Scene.from_objects_json(row["objects"], row["background"], row["texture"])
        named = bool(row["alt_mentions_entity"])
        chosen = caption(scene, {scene.entity} if named and scene.entity else set())
        base = {"image": str(root / row["image_path"]), "alt_text": row["alt_text"] or "", "chosen": chosen,
                "rejected_image": None, "rejected_alt_text": None, "world_id": row["world_id"], "rejected_scene": None}
        if "textual" in dimensions:
            picked = None
            for kind in rng.permutation(TEXTUAL_KINDS).tolist():
                rejected = textual_rejection(scene, named, kind, rng)
                if rejected is not None:
                    records.append({**base, "rejected": rejected, "dimension": "textual", "kind": kind})
                    picked = kind
                    break
            if balance_kinds:  # the other applicable kinds, from a stream of their own (visual, cross-modal unchanged)
                more = np.random.default_rng([seed, int(row["world_id"]), 1])
                for kind in TEXTUAL_KINDS:
                    rejected = None if kind == picked else textual_rejection(scene, named, kind, more)
                    if rejected is not None:
                        records.append({**base, "rejected": rejected, "dimension": "textual", "kind": kind})
        if "visual" in dimensions:
            near = wrong_attribute(scene, rng) or object_missed(scene, rng)
            if near is not None:
                name = f"{PAIR_IMAGE_DIR}/{row['world_id']:06d}.jpg"
                (out / name).write_bytes(encode_image(render_scene(near, 64), "jpeg", 90))
                records.append({**base, "rejected": chosen, "dimension": "visual", "kind": "near_miss_image",
                                "rejected_image": str((out / name).resolve()),
                                "rejected_scene": json.dumps([near.objects_json(), near.background, near.texture])})
        others = [o for o in rng.permutation(len(alts))[:64].tolist()
                  if scene_ids[o] != row["scene_id"] and (alts[o] or "") != (row["alt_text"] or "")]
        if "cross_modal" in dimensions and others:  # another scene's image's alt-text, and another text
            other = table.row(others[0], named=True)
            records.append({**base, "rejected": chosen, "dimension": "cross_modal", "kind": "other_alt_text",
                            "rejected_alt_text": other["alt_text"] or "",
                            "rejected_scene": json.dumps([other["objects"], other["background"], other["texture"]])})
    if balance_kinds:
        keep = balance_textual([(r["world_id"], r["kind"]) for r in records if r["dimension"] == "textual"], seed)
        records = [r for r in records if r["dimension"] != "textual" or (r["world_id"], r["kind"]) in keep]
    return write_pairs(records, {"rejected_image": pl.Utf8, "rejected_alt_text": pl.Utf8, "world_id": pl.Int64,
                                 "rejected_scene": pl.Utf8}, out)


PAIR_SCHEMA = {"image": pl.Utf8, "alt_text": pl.Utf8, "chosen": pl.Utf8, "rejected": pl.Utf8, "dimension": pl.Utf8,
               "kind": pl.Utf8}


def write_pairs(records: Sequence[dict[str, Any]], extra: dict[str, Any], out_dir: str | Path) -> pl.DataFrame:
    """A pair table of ``records`` (every table's columns, then the maker's ``extra`` ones; a key a
    record lacks is null) written to ``out_dir/pairs.parquet``."""
    schema = {**PAIR_SCHEMA, **extra}
    pairs = pl.DataFrame([{k: r.get(k) for k in schema} for r in records], schema=schema)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs.write_parquet(out / PAIRS_FILE)
    return pairs


def read_pairs(path: str | Path) -> pl.DataFrame:
    """A pair table (Parquet), with TRL's names accepted (prompt → alt_text, images → image) and the
    optional columns filled with nulls; an error naming what is missing otherwise."""
    where = Path(path)
    if where.is_dir():
        where = where / PAIRS_FILE
    if not where.is_file():
        raise CaptionerError(f"no pair table at {path}", "make one with `curate captioner pairs` or write the columns "
                             f"{', '.join(PAIR_COLUMNS)} to a Parquet file")
    table = pl.read_parquet(where)
    if "alt_text" not in table.columns and "prompt" in table.columns:
        table = table.rename({"prompt": "alt_text"})
    if "image" not in table.columns and "images" in table.columns:
        images = table["images"]
        table = table.with_columns((images.list.first() if isinstance(images.dtype, pl.List) else images).alias("image"))
    if "dimension" not in table.columns:
        table = table.with_columns(pl.lit("textual").alias("dimension"))
    missing = [c for c in PAIR_COLUMNS if c not in table.columns]
    if missing:
        raise CaptionerError(f"pair table {where} lacks column(s) {missing}", f"it has {', '.join(table.columns)}")
    for column in OPTIONAL_COLUMNS:
        if column not in table.columns:
            table = table.with_columns(pl.lit(None, dtype=pl.Utf8).alias(column))
    bad = sorted(set(table["dimension"].to_list()) - set(DIMENSIONS))
    if bad:
        raise CaptionerError(f"pair table {where}: unknown dimension(s) {bad}", f"use {', '.join(DIMENSIONS)}")
    return table.with_columns(pl.col("alt_text").fill_null(""))
