"""A generated world is deterministic, internally consistent, and honest about its noise."""

from __future__ import annotations

import filecmp
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from curate_world.alttext import noise_probabilities
from curate_world.attributes import extract_attributes, score_caption
from curate_world.describe import parse_description
from curate_world.errors import WorldError
from curate_world.faults import fault_probabilities
from curate_world.generate import World, generate_world, load_world
from curate_world.scene import Scene
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from .conftest import read


def scene_of(row: dict) -> Scene:  # type: ignore[type-arg]
    return Scene.from_objects_json(row["objects"], row["background"], row["texture"])


def all_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def within_binomial(count: int, n: int, p: float, sigmas: float = 4.5) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**16), st.integers(10, 40))
def test_same_seed_same_bytes_different_seed_different_world(seed: int, n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        first = generate_world(Path(tmp) / "a", n=n, seed=seed).dir
        second = generate_world(Path(tmp) / "b", n=n, seed=seed).dir
        files = all_files(first)
        assert files == all_files(second)
        _, mismatch, errors = filecmp.cmpfiles(first, second, [str(f) for f in files], shallow=False)
        assert mismatch == [] and errors == []
        other = generate_world(Path(tmp) / "c", n=n, seed=seed + 1).dir
        assert (first / "world.parquet").read_bytes() != (other / "world.parquet").read_bytes()
        assert (first / "images/000000.jpg").read_bytes() != (other / "images/000000.jpg").read_bytes()


@settings(max_examples=6, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "partial": st.floats(0, 0.3),
            "wrong_attribute": st.floats(0, 0.2),
            "unrelated": st.floats(0, 0.2),
            "empty": st.floats(0, 0.1),
        }
    ),
    st.floats(0.0, 0.6),
    st.integers(0, 1000),
)
def test_noise_and_fault_rates_are_binomial(rates: dict[str, float], fault_rate: float, seed: int) -> None:
    n = 400
    with tempfile.TemporaryDirectory() as tmp:
        world = generate_world(
            Path(tmp) / "w", n=n, seed=seed, fault_rate=fault_rate, noise_rates=rates, eval_n=0
        )
        table = read(world)
    noise = table["noise_type"].value_counts()
    counts = dict(zip(noise["noise_type"], noise["count"], strict=True))
    for kind, p in noise_probabilities(rates).items():
        assert within_binomial(counts.get(kind, 0), n, p), (kind, counts.get(kind, 0), n * p)
    faults = table["fault"].value_counts()
    counts = dict(zip(faults["fault"], faults["count"], strict=True))
    for kind, p in fault_probabilities(fault_rate).items():
        assert within_binomial(counts.get(kind, 0), n, p), (kind, counts.get(kind, 0), n * p)


def test_default_rates_on_a_large_world(large_world: World) -> None:
    table = read(large_world)
    n = table.height
    for kind, p in noise_probabilities(None).items():
        assert within_binomial(int((table["noise_type"] == kind).sum()), n, p), kind
    assert within_binomial(int((table["fault"] != "none").sum()), n, 0.2)
    assert within_binomial(
        int(table["entity"].is_not_null().sum()), table["scene_id"].n_unique(), 0.3, sigmas=6
    )
    assert abs(int(table["dup_group"].is_not_null().sum()) - 0.15 * n) <= 1


def test_rows_are_consistent(small_world: World) -> None:
    table = read(small_world)
    assert table["world_id"].to_list() == list(range(table.height))
    scenes = {row["scene_id"]: scene_of(row) for row in table.iter_rows(named=True)}
    for row in table.iter_rows(named=True):
        scene = scene_of(row)
        assert parse_description(row["description"]) == scene
        assert row["entity"] == scene.entity and row["n_objects"] == len(scene.objects)
        assert row["url_path"] == "/img/" + Path(row["image_path"]).name
        with Image.open(small_world.dir / row["image_path"]) as image:
            assert image.size == (row["width"], row["height"])
        score = score_caption(row["alt_text"], scene)
        if row["noise_type"] == "faithful":
            assert score.pair_recall == 1.0 and score.pair_precision == 1.0, row
        if row["noise_type"] in ("boilerplate", "empty"):
            assert not extract_attributes(row["alt_text"]).objects
        if row["noise_type"] == "unrelated":  # faithful to the scene it names, which is another one
            other = scenes[int(row["noise_detail"].removeprefix("describes scene "))]
            assert other != scene and score_caption(row["alt_text"], other).pair_recall == 1.0
        if row["alt_mentions_entity"]:
            assert row["entity"] is not None and row["entity"].lower() in row["alt_text"].lower()
    manifest = json.loads((small_world.dir / "world.json").read_text())
    assert manifest["counts"]["rows"] == table.height
    assert manifest["counts"]["fault"]["404"] == int((table["fault"] == "404").sum())
    assert len(manifest["vocabulary"]["entities"]) >= 20


def test_dup_groups_share_a_scene_and_look_alike(large_world: World) -> None:
    table = read(large_world)
    groups = (
        table.filter(pl.col("dup_group").is_not_null())
        .group_by("dup_group")
        .agg(
            pl.len().alias("size"),
            *(
                pl.col(c).n_unique().alias(c)
                for c in ("scene_id", "description", "objects", "url_path", "alt_text")
            ),
        )
    )
    assert (
        (groups["size"] >= 2).all() and (groups["scene_id"] == 1).all() and (groups["description"] == 1).all()
    )
    assert (groups["url_path"] == groups["size"]).all()
    singles = table.filter(pl.col("dup_group").is_null())
    assert singles["scene_id"].n_unique() == singles.height  # a singleton's scene appears nowhere else
    assert not set(singles["scene_id"]) & set(table.filter(pl.col("dup_group").is_not_null())["scene_id"])

    def thumb(path: str) -> np.ndarray:
        with Image.open(large_world.dir / path) as image:
            return np.asarray(image.convert("L").resize((16, 16), Image.Resampling.BOX), dtype=np.float32)

    dups = table.filter(pl.col("dup_group").is_not_null()).sort("dup_group")
    near, far = [], []
    for _, members in dups.group_by("dup_group", maintain_order=True):
        paths = members["image_path"].to_list()
        near.append(np.abs(thumb(paths[0]) - thumb(paths[1])).mean())
    paths = singles["image_path"].to_list()
    far = [np.abs(thumb(a) - thumb(b)).mean() for a, b in zip(paths[:100], paths[100:200], strict=True)]
    assert np.median(near) * 4 < np.median(far), (np.median(near), np.median(far))
    # ... and they really differ in bytes: size or quality or jitter.
    assert (
        dups.group_by("dup_group")
        .agg(pl.col("width").n_unique() + pl.col("jpeg_quality").n_unique())["width"]
        .max()
        > 2
    )


def test_eval_is_clean_disjoint_and_labelled(small_world: World) -> None:
    world, evaluation = read(small_world), read(small_world, "eval.parquet")
    assert evaluation.height == 60
    assert not set(evaluation["description"]) & set(world["description"])
    assert evaluation["description"].n_unique() == evaluation.height
    for row in evaluation.iter_rows(named=True):
        scene = parse_description(row["description"])
        assert parse_description(row["visual_description"]) == scene == scene_of(row)
        (large,) = [obj for obj in scene.objects if obj.size == "large"]
        assert (row["label_shape"], row["label_color"], row["label_position"]) == (
            large.shape,
            large.color,
            large.position,
        )
        assert row["entity"] == scene.entity == large.entity
        assert (small_world.dir / row["image_path"]).is_file() and row["url_path"].startswith("/eval/")


def test_realigned_captions_keep_every_true_attribute(small_world: World) -> None:
    world = read(small_world)
    realigned = read(small_world, "realigned.parquet")
    assert realigned.height == 60
    joined = realigned.join(world, on="world_id", suffix="_world")
    assert (joined["alt_text"] == joined["alt_text_world"]).all()
    for row in joined.iter_rows(named=True):
        scene = scene_of(row)
        assert parse_description(row["caption"]) == scene
        mentions = extract_attributes(row["caption"])
        assert sorted((m.size, m.color, m.shape) for m in mentions.objects) == sorted(
            (o.size, o.color, o.shape) for o in scene.objects
        )
        assert mentions.background == scene.background and mentions.texture == scene.texture
        kept = scene.entity is not None and row["alt_mentions_entity"]
        assert mentions.entities == ((scene.entity,) if kept else ())
        assert row["entity"] == (scene.entity if kept else None)


def test_existing_worlds_are_reused_or_protected(tmp_path: Path) -> None:
    world = generate_world(tmp_path / "w", n=20, seed=1)
    stamp = (world.dir / "world.parquet").stat().st_mtime_ns
    again = generate_world(tmp_path / "w", n=20, seed=1)
    assert again.counts == world.counts and (world.dir / "world.parquet").stat().st_mtime_ns == stamp
    with pytest.raises(WorldError, match="overwrite"):
        generate_world(tmp_path / "w", n=20, seed=2)
    replaced = generate_world(tmp_path / "w", n=20, seed=2, overwrite=True)
    assert load_world(replaced.dir).params.seed == 2
    assert [p.name for p in tmp_path.iterdir()] == ["w"]  # no partial directories left behind


def test_overwrite_replaces_a_world_never_anything_else(tmp_path: Path) -> None:
    """--overwrite deletes what it replaces: only ever a world, and only a world's own files."""
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "notes.txt").write_text("important")
    (victim / "sub" / "code.py").write_text("x = 1")
    for overwrite in (False, True):
        with pytest.raises(WorldError, match="holds no world") as error:
            generate_world(victim, n=10, seed=1, overwrite=overwrite)
        assert "--overwrite" not in error.value.hint
    assert (victim / "notes.txt").read_text() == "important" and (victim / "sub" / "code.py").exists()
    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    with pytest.raises(WorldError, match="is a file"):
        generate_world(a_file, n=10, seed=1, overwrite=True)
    world = generate_world(tmp_path / "w", n=10, seed=1)
    (world.dir / "my_notes.txt").write_text("mine")  # a user's file beside a world
    with pytest.raises(WorldError, match="my_notes.txt"):
        generate_world(world.dir, n=10, seed=2, overwrite=True)
    assert load_world(world.dir).params.seed == 1 and (world.dir / "my_notes.txt").exists()
    (world.dir / "my_notes.txt").unlink()
    (world.dir / "world.json").write_text("{not json")  # a corrupt world is replaced, not an internal error
    with pytest.raises(WorldError, match="not a readable world manifest"):
        load_world(world.dir)
    assert load_world(generate_world(world.dir, n=10, seed=2, overwrite=True).dir).params.seed == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "victim", "w"]


def test_bad_parameters_say_which(tmp_path: Path) -> None:
    with pytest.raises(WorldError, match="noise_rates"):
        generate_world(tmp_path / "w", n=10, noise_rates={"parital": 0.1})
    with pytest.raises(WorldError, match="fault_rate"):
        generate_world(tmp_path / "w", n=10, fault_rate=1.5)
    with pytest.raises(WorldError, match="not a world directory"):
        load_world(tmp_path)
