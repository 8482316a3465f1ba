"""Write a world directory: images, world.parquet, eval.parquet, realigned.parquet, world.json.

Every random choice comes from a generator seeded by ``(seed, stream, index)``, so a row's image
and alt-text depend only on the seed and the row, and the same parameters give byte-identical
files. The world is built in a sibling ``.partial`` directory and renamed into place, so a crash
never leaves a half-written world that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curate.diskspace import check_free
from curate_world import tables, vocab
from curate_world.alttext import NOISE_TYPES, AltText, noise_probabilities, write_alt_text
from curate_world.cut import wrong_part_cut
from curate_world.describe import describe
from curate_world.duplicates import Variant, plan_groups, sample_variant
from curate_world.errors import WorldError
from curate_world.faults import FAULTS, fault_probabilities
from curate_world.params import UNSTYLED_WORLD_VERSION, WORLD_VERSION, WorldParams
from curate_world.partition import sample_in_set
from curate_world.realign import realigned_caption
from curate_world.scene import Scene, sample_scene
from curate_world.webstyle import STYLES, normalize_web_text, style_alt_text, style_weights

if TYPE_CHECKING:
    import numpy as np

# Independent random streams: changing how alt-texts are written never changes an image, and
# web styling (its own stream) never changes what an alt-text says.
PLAN, SCENES, ALT_TEXTS, RENDERING, EVAL, WEB_STYLES = range(6)
MANIFEST = "world.json"
CHECK_DISK_EVERY = 1000  # images between two looks at the free disk space


@dataclass(frozen=True)
class World:
    """A generated world on disk."""

    dir: Path
    params: WorldParams
    counts: dict[str, Any]

    @property
    def world_table(self) -> Path:
        return self.dir / tables.WORLD_FILE


def _rng(seed: int, stream: int, index: int | None = None) -> np.random.Generator:
    import numpy as np

    return np.random.default_rng([seed, stream] if index is None else [seed, stream, index])


def generate_world(
    out_dir: str | Path,
    n: int = 5000,
    seed: int = 0,
    image_size: int = 64,
    fault_rate: float = 0.2,
    *,
    overwrite: bool = False,
    min_free_disk: int = 0,
    **more: Any,
) -> World:
    """Generate a world into ``out_dir``; ``more`` takes the other :class:`WorldParams` fields
    (``noise_rates``, ``dup_fraction``, ``entity_rate``, ``eval_n``…).

    If ``out_dir`` already holds the world these parameters make, it is returned as is. A different
    world there is an error unless ``overwrite=True``. Generation stops (and leaves nothing) once
    the disk has ``min_free_disk`` bytes free or fewer (a run's ``run.min_free_disk``).
    """
    try:
        params = WorldParams(n=n, seed=seed, image_size=image_size, fault_rate=fault_rate, **more)
    except ValueError as exc:  # pydantic's ValidationError lists every bad field with its path
        raise WorldError(f"invalid world parameters: {exc}", "see curate_world.params.WorldParams") from None
    out = Path(out_dir)
    try:
        existing = load_world(out) if (out / MANIFEST).is_file() else None
    except WorldError:
        if not overwrite:
            raise
        existing = None  # an unreadable world is replaced like any other
    if existing is not None and existing.params == params and not overwrite:
        return existing
    if out.exists() and not out.is_dir():
        raise WorldError(f"{out} is a file, not a directory", "choose a directory for the world")
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            # --overwrite replaces a world, never a directory of something else (it deletes it).
            raise WorldError(f"{out} is not empty and holds no world (no {MANIFEST}): it is not replaced, "
                             f"even with overwrite", "choose an empty or new directory for the world")
        if not overwrite:
            raise WorldError(
                f"{out} holds another world than these parameters make",
                "choose an empty directory, or pass overwrite=True (CLI: --overwrite) to replace that world",
            )
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        counts = _build(partial, params, min_free_disk)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return _move_into_place(partial, out, params, counts, overwrite)


def _move_into_place(
    partial: Path, out: Path, params: WorldParams, counts: dict[str, Any], overwrite: bool
) -> World:
    """Rename the finished world into place. Another process may have finished the same world in
    the meantime (two runs of one spec); then its copy, byte-identical to ours, wins."""
    if out.exists() and overwrite and any(out.iterdir()):
        foreign = sorted(p.name for p in out.iterdir() if not (partial / p.name).exists())
        if foreign:
            shutil.rmtree(partial, ignore_errors=True)
            raise WorldError(f"{out} holds a world and also {', '.join(foreign[:5])}"
                             f"{' …' if len(foreign) > 5 else ''}, which no world has: it is not replaced",
                             "move those files away, or generate the world into another directory")
        shutil.rmtree(out)
    elif out.exists() and not any(out.iterdir()):
        out.rmdir()
    try:
        partial.rename(out)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if (out / MANIFEST).exists() and load_world(out).params == params:
            return load_world(out)
        raise WorldError(f"{out} appeared while the world was being generated", "generate it again") from None
    return World(out, params, counts)


def load_world(world_dir: str | Path) -> World:
    path = Path(world_dir) / MANIFEST
    if not path.exists():
        raise WorldError(
            f"{path.parent} is not a world directory (no {MANIFEST})",
            "generate one: curate world generate DIR",
        )
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (ValueError, OSError) as exc:
        raise WorldError(f"{path} is not a readable world manifest ({exc})",
                         "regenerate the world: curate world generate DIR --overwrite") from None
    version = manifest.get("version")
    if version not in (UNSTYLED_WORLD_VERSION, WORLD_VERSION):
        raise WorldError(
            f"{path} is world version {version}, this curate_world writes version {WORLD_VERSION}",
            "regenerate it with --overwrite",
        )
    try:
        world = World(Path(world_dir), WorldParams(**manifest["params"]), manifest["counts"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WorldError(f"{path} is not a readable world manifest ({type(exc).__name__}: {str(exc)[:200]})",
                         "regenerate the world: curate world generate DIR --overwrite") from None
    if version != world.params.version:
        raise WorldError(
            f"{path} is world version {version}, this curate_world writes version {world.params.version} "
            f"for its parameters",
            "regenerate it with --overwrite",
        )
    return world


def world_scene(seed: int, index: int, *, entity_rate: float = 0.3, concept_skew: float | None = None,
                scenes: str = "any") -> Scene:
    """Scene ``index`` of every world with this seed (it depends on nothing else): the first draw of
    its own generator that lies in the ``scenes`` set (``curate_world.partition``)."""
    return sample_in_set(
        _rng(seed, SCENES, index), scenes,
        lambda rng: sample_scene(rng, entity_rate=entity_rate, concept_skew=concept_skew),
    )


def world_scene_count(n: int, seed: int, dup_fraction: float = 0.1, max_dup_group_size: int = 4) -> int:
    """How many scenes a world of ``n`` rows and this seed has (its rows repeat some of them)."""
    return len(plan_groups(n, dup_fraction, max_dup_group_size, _rng(seed, PLAN)))


def world_scenes(params: WorldParams) -> list[Scene]:
    """The scenes of the world ``params`` make, by scene_id (two ids can share content), without
    drawing a pixel."""
    count = world_scene_count(params.n, params.seed, params.dup_fraction, params.max_dup_group_size)
    return [
        world_scene(params.seed, j, entity_rate=params.entity_rate, concept_skew=params.concept_skew,
                    scenes=params.scenes)
        for j in range(count)
    ]


def _build(out: Path, params: WorldParams, min_free_disk: int = 0) -> dict[str, Any]:
    plan = _rng(params.seed, PLAN)
    group_sizes = plan_groups(params.n, params.dup_fraction, params.max_dup_group_size, plan)
    scenes = [
        world_scene(params.seed, j, entity_rate=params.entity_rate, concept_skew=params.concept_skew,
                    scenes=params.scenes)
        for j in range(len(group_sizes))
    ]
    descriptions = [describe(scene) for scene in scenes]
    scene_of_row = [j for j, size in enumerate(group_sizes) for _ in range(size)]
    order = plan.permutation(params.n)
    scene_ids = [scene_of_row[k] for k in order]  # world_id -> scene index
    noise = noise_probabilities(params.noise_rates)
    noise_types = plan.choice(list(noise), size=params.n, p=list(noise.values()))
    fault_p = fault_probabilities(params.fault_rate, params.fault_weights)
    faults = plan.choice(list(fault_p), size=params.n, p=list(fault_p.values()))
    val_scenes = plan.random(len(scenes)) < params.val_fraction
    realigned_ids = set(
        plan.choice(params.n, size=round(params.n * params.realign_fraction), replace=False).tolist()
    )
    # Dup group ids in order of first appearance, so they read 0, 1, 2… down the table.
    group_of_scene: dict[int, int] = {}
    for scene_id in scene_ids:
        if group_sizes[scene_id] > 1 and scene_id not in group_of_scene:
            group_of_scene[scene_id] = len(group_of_scene)

    (out / tables.IMAGE_DIR).mkdir()
    extension = "jpg" if params.image_format == "jpeg" else "png"
    rows, realigned = [], []
    for world_id, scene_id in enumerate(scene_ids):
        if world_id % CHECK_DISK_EVERY == 0:  # 2M images of 1024 px are ~100 GB
            check_free(out, min_free_disk, f"generating the world ({world_id:,} of {params.n:,} images written)")
        scene = scenes[scene_id]
        text_rng = _rng(params.seed, ALT_TEXTS, world_id)
        other_id, other = (
            _other_scene(scene_id, scenes, descriptions, text_rng)
            if noise_types[world_id] == "unrelated"
            else (None, None)
        )
        alt = write_alt_text(
            scene,
            str(noise_types[world_id]),
            text_rng,
            other=other,
            entity_mention_rate=params.entity_mention_rate,
        )
        if other_id is not None:
            alt = replace(alt, detail=f"describes scene {other_id}")
        plain_text = alt.text
        if params.web_styled:
            alt, web_columns = _web_style(alt, world_id, scene_id, scenes, descriptions, noise, params)
        render_rng = _rng(params.seed, RENDERING, world_id)
        variant = sample_variant(render_rng) if scene_id in group_of_scene else Variant()
        name = f"{world_id:06d}.{extension}"
        width, quality = _write_image(out / tables.IMAGE_DIR / name, scene, params, variant, render_rng)
        row = {
            "world_id": world_id,
            "url_path": f"{tables.IMAGE_URL_PREFIX}{name}",
            "image_path": f"{tables.IMAGE_DIR}/{name}",
            "alt_text": alt.text,
            "noise_type": alt.noise_type,
            "noise_detail": alt.detail,
            "alt_mentions_entity": alt.mentions_entity,
            "description": descriptions[scene_id],
            "objects": scene.objects_json(),
            "n_objects": len(scene.objects),
            "entity": scene.entity,
            "background": scene.background,
            "texture": scene.texture,
            "scene_id": scene_id,
            "dup_group": group_of_scene.get(scene_id),
            "fault": str(faults[world_id]),
            "split": "val" if val_scenes[scene_id] else "train",
            "width": width,
            "height": width,
            "jpeg_quality": quality,
        }
        if params.web_styled:
            row.update(alt_text_plain=plain_text, **web_columns)
        rows.append(row)
        if world_id in realigned_ids:
            realigned.append(_realigned_row(row, scene, alt))

    eval_rows = _build_eval(out, params, set(descriptions), extension)
    world_schema = {**tables.WORLD_SCHEMA, **(tables.WEB_STYLE_SCHEMA if params.web_styled else {})}
    tables.write_table(rows, world_schema, out / tables.WORLD_FILE)
    tables.write_table(eval_rows, tables.EVAL_SCHEMA, out / tables.EVAL_FILE)
    tables.write_table(realigned, tables.REALIGNED_SCHEMA, out / tables.REALIGNED_FILE)
    counts = _counts(rows, eval_rows, realigned)
    manifest = {
        "version": params.version,
        "params": params.model_dump(mode="json"),
        "counts": counts,
        "files": {
            "world": tables.WORLD_FILE,
            "eval": tables.EVAL_FILE,
            "realigned": tables.REALIGNED_FILE,
            "images": tables.IMAGE_DIR,
            "eval_images": tables.EVAL_IMAGE_DIR,
        },
        "vocabulary": _vocabulary(),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return counts


def _web_style(
    alt: AltText,
    world_id: int,
    scene_id: int,
    scenes: list[Scene],
    descriptions: list[str],
    noise: dict[str, float],
    params: WorldParams,
) -> tuple[AltText, dict[str, Any]]:
    """The row's alt-text in its web styles, and the ground-truth columns that record them. The
    entity counts as mentioned only if its name survives the styling (truncation can cut it), and
    a wrong-attribute alt-text cut before its wrong part is partial (``curate_world.cut``)."""
    rng = _rng(params.seed, WEB_STYLES, world_id)
    styled = style_alt_text(alt.text, rng, params.web_style_rate, style_weights(params.web_style_weights))
    entity = scenes[scene_id].entity
    mentions = (
        alt.mentions_entity
        and entity is not None
        and entity.lower() in normalize_web_text(styled.text).lower()
    )
    own = replace(alt, text=styled.text, mentions_entity=mentions)
    if alt.noise_type == "wrong_attribute" and wrong_part_cut(alt.text, styled, scenes[scene_id]):
        own = replace(own, noise_type="partial", detail=f"truncated before its wrong part ({alt.detail})")
    alt_texts = None
    if "multi_alt" in styled.styles:
        entries = [own, *_disagreeing(own.noise_type, scene_id, scenes, descriptions, noise, params, rng)]
        styled.detail["multi_alt"] = [entry.noise_type for entry in entries]
        alt_texts = json.dumps(
            [
                {
                    "text": entry.text,
                    "noise_type": entry.noise_type,
                    "noise_detail": entry.detail,
                    "mentions_entity": entry.mentions_entity,
                }
                for entry in entries
            ],
            ensure_ascii=False,
        )
    columns = {
        "styles": list(styled.styles),
        "style_detail": json.dumps(styled.detail, ensure_ascii=False, sort_keys=True) if styled.styles else None,
        "alt_texts": alt_texts,
    }
    return own, columns


def _disagreeing(
    own_type: str,
    scene_id: int,
    scenes: list[Scene],
    descriptions: list[str],
    noise: dict[str, float],
    params: WorldParams,
    rng: np.random.Generator,
) -> list[AltText]:
    """One or two more alt-texts of the same image (other pages, title attributes), each of a noise
    type the others do not have, so they disagree about the image."""
    texts: list[AltText] = []
    used = {own_type}
    for _ in range(1 + int(rng.random() < 0.4)):
        kinds = [k for k in NOISE_TYPES if k not in used]
        weights = [noise.get(k, 0.0) for k in kinds]
        p = [w / sum(weights) for w in weights] if sum(weights) > 0 else [1 / len(kinds)] * len(kinds)
        kind = kinds[int(rng.choice(len(kinds), p=p))]
        used.add(kind)
        other_id, other = (
            _other_scene(scene_id, scenes, descriptions, rng) if kind == "unrelated" else (None, None)
        )
        alt = write_alt_text(
            scenes[scene_id], kind, rng, other=other, entity_mention_rate=params.entity_mention_rate
        )
        texts.append(replace(alt, detail=f"describes scene {other_id}") if other_id is not None else alt)
    return texts


def _other_scene(
    own: int, scenes: list[Scene], descriptions: list[str], rng: np.random.Generator
) -> tuple[int | None, Scene]:
    """A scene with different content for an 'unrelated' alt-text to describe, and its scene_id
    (None when the world is too small to have one and a scene is invented)."""
    for _ in range(20):
        candidate = int(rng.integers(len(scenes)))
        if descriptions[candidate] != descriptions[own]:
            return candidate, scenes[candidate]
    while True:
        invented = sample_scene(rng)
        if describe(invented) != descriptions[own]:
            return None, invented


def _write_image(
    path: Path, scene: Scene, params: WorldParams, variant: Variant, rng: np.random.Generator
) -> tuple[int, int | None]:
    from PIL import Image

    from curate_world.render import encode_image, render_scene

    image = render_scene(scene, params.image_size, rng, variant.jitter)
    side = round(params.image_size * variant.scale)
    if side != params.image_size:
        image = image.resize((side, side), Image.Resampling.BILINEAR)
    quality = variant.quality or params.jpeg_quality
    path.write_bytes(encode_image(image, params.image_format, quality))
    return side, quality if params.image_format == "jpeg" else None


def _realigned_row(row: dict[str, Any], scene: Scene, alt: AltText) -> dict[str, Any]:
    return {
        "world_id": row["world_id"],
        "url_path": row["url_path"],
        "alt_text": alt.text,
        "noise_type": alt.noise_type,
        "caption": realigned_caption(scene, alt),
        "entity": scene.entity if alt.mentions_entity else None,
        "description": row["description"],
        "objects": row["objects"],
        "fault": row["fault"],
        "split": row["split"],
    }


def _build_eval(out: Path, params: WorldParams, seen: set[str], extension: str) -> list[dict[str, Any]]:
    """Clean held-out images: scenes whose content never occurs in world.parquet, each with one
    large object whose shape, color and entity are its class labels."""
    from curate_world.render import encode_image, render_scene

    (out / tables.EVAL_IMAGE_DIR).mkdir()
    rows: list[dict[str, Any]] = []
    attempt = 0
    while len(rows) < params.eval_rows:
        rng = _rng(params.seed, EVAL, attempt)
        attempt += 1
        scene = sample_in_set(rng, params.scenes,
                              lambda r: sample_scene(r, entity_rate=params.entity_rate, single_label=True))
        description = describe(scene)
        if description in seen:
            continue
        seen.add(description)
        eval_id = len(rows)
        name = f"{eval_id:06d}.{extension}"
        image = render_scene(scene, params.image_size, rng)
        (out / tables.EVAL_IMAGE_DIR / name).write_bytes(
            encode_image(image, params.image_format, params.jpeg_quality)
        )
        label = next(obj for obj in scene.objects if obj.size == "large")
        rows.append(
            {
                "eval_id": eval_id,
                "url_path": f"{tables.EVAL_URL_PREFIX}{name}",
                "image_path": f"{tables.EVAL_IMAGE_DIR}/{name}",
                "description": description,
                "visual_description": describe(scene, name_entity=False),
                "objects": scene.objects_json(),
                "n_objects": len(scene.objects),
                "entity": scene.entity,
                "background": scene.background,
                "texture": scene.texture,
                "label_shape": label.shape,
                "label_color": label.color,
                "label_position": label.position,
            }
        )
    return rows


def _counts(
    rows: list[dict[str, Any]], eval_rows: list[dict[str, Any]], realigned: list[dict[str, Any]]
) -> dict[str, Any]:
    noise = Counter(r["noise_type"] for r in rows)
    faults = Counter(r["fault"] for r in rows)
    counts: dict[str, Any] = {
        "rows": len(rows),
        "scenes": len({r["scene_id"] for r in rows}),
        "noise_type": {name: noise.get(name, 0) for name in NOISE_TYPES},
        "fault": {name: faults.get(name, 0) for name in FAULTS},
        "dup_groups": len({r["dup_group"] for r in rows if r["dup_group"] is not None}),
        "dup_rows": sum(r["dup_group"] is not None for r in rows),
        "entity_rows": sum(r["entity"] is not None for r in rows),
        "val_rows": sum(r["split"] == "val" for r in rows),
        "eval_rows": len(eval_rows),
        "realigned_rows": len(realigned),
    }
    if rows and "styles" in rows[0]:
        styles = Counter(style for r in rows for style in r["styles"])
        counts["styled_rows"] = sum(bool(r["styles"]) for r in rows)
        counts["styles"] = {name: styles.get(name, 0) for name in STYLES}
    return counts


def _vocabulary() -> dict[str, Any]:
    """Class names for zero-shot prompts and parsers, so consumers need not import this package."""
    return {
        "shapes": list(vocab.SHAPES),
        "colors": list(vocab.COLORS),
        "sizes": list(vocab.SIZES),
        "positions": list(vocab.POSITIONS),
        "backgrounds": list(vocab.BACKGROUNDS),
        "textures": list(vocab.TEXTURES),
        "entities": [
            {
                "name": e.name,
                "shape": e.shape,
                "color": e.color,
                "marker": e.marker,
                "marker_color": e.marker_color,
            }
            for e in vocab.ENTITIES
        ],
    }
