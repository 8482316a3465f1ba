"""World → WebDataset shards (jpg + txt) for ``open_clip_train --dataset-type webdataset``.

Each image is paired with several *true* texts, freshly written from its ground truth with the
world's own phrasing, so the model learns what a faithful caption of an image is however it is
worded: the canonical description (entity named or drawn in words), faithful alt-texts (web
phrasing, entity names, counted objects) and some partial ones (true but incomplete, so a
caption that is right about less still scores above one that is wrong). No noisy text is ever a
positive. Samples are shuffled across shards so one image's texts rarely meet in a batch.

Colour is the easiest thing in these images to match, and a model trained on full captions alone
learns colours and ignores shapes (zero-shot shape accuracy near chance). So one text of every
image names its objects' shapes (and sometimes sizes) without colours: to pick its image out of a
batch the model has to see shapes, which is what catches an alt-text with the wrong shape.
"""

from __future__ import annotations

import io
import itertools
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

PARTIAL_SHARE = 0.4  # of the texts after the first three (description, faithful alt-text, shapes)


def shapes_text(scene, rng: np.random.Generator) -> str:  # type: ignore[no-untyped-def]
    """The scene's shapes without colours: "two circles and a star", "a large circle and a small star"."""
    from curate_world.api import counted, join_list, sentence_case

    plain = [obj for obj in scene.objects if obj.entity is None]
    logo = next((obj for obj in scene.objects if obj.entity is not None), None)
    if plain and rng.random() < 0.5:
        phrases = [counted(1, [obj.size, obj.shape]) for obj in plain]
    else:
        shapes = list(dict.fromkeys(obj.shape for obj in plain))
        phrases = [counted(sum(obj.shape == shape for obj in plain), [shape]) for shape in shapes]
    if logo is not None:
        phrases.append(f"the {logo.entity} logo" if rng.random() < 0.5 else counted(1, [logo.shape]))
    text = join_list(phrases)
    text = text if rng.random() < 0.7 else f"{'photo' if rng.random() < 0.5 else 'illustration'} of {text}"
    return sentence_case(text) if rng.random() < 0.5 else text


def true_texts(description: str, count: int, rng: np.random.Generator) -> list[str]:
    """``count`` true texts of the scene that ``description`` describes."""
    from curate_world.api import parse_description

    return scene_texts(parse_description(description), count, rng)


def scene_texts(scene, count: int, rng: np.random.Generator) -> list[str]:  # type: ignore[no-untyped-def]
    """``count`` true texts of ``scene``: its description, faithful alt-texts, a shapes-only text,
    then partial or faithful ones."""
    from curate_world.api import describe, write_faithful, write_partial

    has_entity = scene.entity is not None
    texts = [describe(scene, name_entity=bool(rng.random() < 0.5))]
    while len(texts) < count:
        name_entity = has_entity and bool(rng.random() < 0.85)
        if len(texts) == 2:
            texts.append(shapes_text(scene, rng))
        elif len(texts) >= 3 and rng.random() < PARTIAL_SHARE:
            texts.append(write_partial(scene, rng, name_entity).text)
        else:
            texts.append(write_faithful(scene, rng, name_entity).text)
    return texts[:count]


def training_pairs(world_dir: Path, texts_per_image: int, seed: int) -> pl.DataFrame:
    table = pl.read_parquet(world_dir / "world.parquet").select("world_id", "image_path", "description")
    rows: list[dict[str, Any]] = []
    for world_id, image_path, description in table.iter_rows():
        rng = np.random.default_rng([seed, world_id])
        for index, text in enumerate(true_texts(description, texts_per_image, rng)):
            rows.append({"key": f"{world_id:08d}_{index}", "image_path": image_path, "text": text})
    return pl.DataFrame(rows, schema={"key": pl.Utf8, "image_path": pl.Utf8, "text": pl.Utf8})


def empty_shard_dir(out_dir: Path) -> None:
    """Create ``out_dir`` or remove the shards an earlier run left in it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.tar"):
        old.unlink()


def add_sample(tar: tarfile.TarFile, key: str, members: dict[str, bytes]) -> None:
    """One WebDataset sample: a ``key.extension`` member per payload, with a fixed mtime so equal
    inputs give equal bytes."""
    for extension, payload in members.items():
        info = tarfile.TarInfo(f"{key}.{extension}")
        info.size = len(payload)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))


def write_sample_shards(out_dir: Path, samples: Iterator[tuple[str, bytes, str]], group: str,
                        per_shard: int) -> tuple[str, int]:
    """Write (key, jpeg, text) samples in order, ``per_shard`` to a shard; each sample's json
    records its ``group`` (the key up to its ``_``). Return (the brace pattern open_clip_train
    takes, number of samples)."""
    empty_shard_dir(out_dir)
    shards, count = 0, 0
    while chunk := list(itertools.islice(samples, per_shard)):
        with tarfile.open(out_dir / f"{shards:05d}.tar", "w") as tar:
            for key, image, text in chunk:
                meta = json.dumps({group: key.split("_")[0]}).encode()
                add_sample(tar, key, {"jpg": image, "txt": text.encode(), "json": meta})
        shards, count = shards + 1, count + len(chunk)
    return str(out_dir / f"{{00000..{max(shards - 1, 0):05d}}}.tar"), count


def write_shards(world_dir: Path, out_dir: Path, *, texts_per_image: int = 3, seed: int = 0,
                 per_shard: int = 2000) -> tuple[str, int]:
    """Write shards; return (the brace pattern open_clip_train takes, number of samples)."""
    pairs = training_pairs(world_dir, texts_per_image, seed)
    pairs = pairs[np.random.default_rng([seed, 1]).permutation(pairs.height)]
    empty_shard_dir(out_dir)
    shards = 0
    for start in range(0, pairs.height, per_shard):
        with tarfile.open(out_dir / f"{shards:05d}.tar", "w") as tar:
            for row in pairs.slice(start, per_shard).iter_rows(named=True):
                image = (world_dir / row["image_path"]).read_bytes()
                suffix = Path(row["image_path"]).suffix.lstrip(".")
                meta = json.dumps({"image_path": row["image_path"]}).encode()
                add_sample(tar, row["key"], {suffix: image, "txt": row["text"].encode(), "json": meta})
        shards += 1
    return str(out_dir / f"{{00000..{shards - 1:05d}}}.tar"), pairs.height
