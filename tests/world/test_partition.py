"""Scene-disjoint worlds: a train world and a held-out world never show the same scene, whatever
their seeds, sizes and noise mixes; held-out worlds show nothing the shipped models saw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from curate_world.generate import generate_world, world_scenes
from curate_world.params import WorldParams
from curate_world.partition import (
    HELDOUT_SHARE,
    in_scene_set,
    partition_of_hash,
    scene_hash,
    scene_key,
    scene_partition,
    shipped_scenes,
)
from curate_world.scene import Scene, SceneObject, sample_scene
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
NOISE_MIXES = st.sampled_from([
    None,
    {"partial": 0.3, "wrong_attribute": 0.25, "unrelated": 0.1},
    {"empty": 0.5},
    {"boilerplate": 0.0, "partial": 0.0, "wrong_attribute": 0.0, "unrelated": 0.0, "empty": 0.0},
])
WORLDS = st.fixed_dictionaries({
    "n": st.integers(1, 400),
    "seed": st.integers(0, 2**32),
    "noise_rates": NOISE_MIXES,
    "dup_fraction": st.sampled_from([0.0, 0.1, 0.5]),
    "entity_rate": st.sampled_from([0.0, 0.3, 1.0]),
    "concept_skew": st.sampled_from([None, 1.0]),
    "web_style_rate": st.sampled_from([0.0, 0.5]),
})


def keys(params: WorldParams) -> set[str]:
    return {scene_key(scene) for scene in world_scenes(params)}


def test_a_scene_key_is_its_content_and_is_pinned() -> None:
    logo = SceneObject("hexagon", "purple", "large", "center", "Zorblax Tower")
    scene = Scene((SceneObject("circle", "red", "small", "top left"), logo), "white", "stripes")
    assert scene_key(scene) == "stripes:white|top left:small:red:circle;center:large:purple:hexagon:Zorblax Tower"
    # The partition must never move between versions: pinned hash of this scene.
    assert scene_hash(scene) == 0xA516B7F0E4EC7337
    assert scene_partition(scene) == partition_of_hash(scene_hash(scene))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 2**32))
def test_equal_content_equal_key_different_content_different_key(a: int, b: int) -> None:
    first, second = (sample_scene(np.random.default_rng(s), entity_rate=0.5) for s in (a, b))
    assert (scene_key(first) == scene_key(second)) == (first == second)
    again = Scene.from_objects_json(first.objects_json(), first.background, first.texture)
    assert scene_key(again) == scene_key(first)


def test_the_held_out_share_of_the_scene_space() -> None:
    scenes = [sample_scene(np.random.default_rng([11, i])) for i in range(4000)]
    share = sum(scene_partition(s) == "heldout" for s in scenes) / len(scenes)
    assert abs(share - HELDOUT_SHARE) < 0.03


@settings(max_examples=25, deadline=None)
@given(WORLDS, WORLDS)
def test_train_and_heldout_worlds_share_no_scene(first: dict, second: dict) -> None:  # type: ignore[type-arg]
    train = keys(WorldParams(**first, scenes="train"))
    heldout = keys(WorldParams(**second, scenes="heldout"))
    assert not train & heldout


@settings(max_examples=20, deadline=None)
@given(WORLDS, st.sampled_from(["train", "heldout"]))
def test_a_world_draws_only_its_partition_whatever_the_other_knobs(world: dict, scenes: str) -> None:  # type: ignore[type-arg]
    params = WorldParams(**world, scenes=scenes)
    drawn = world_scenes(params)
    assert all(in_scene_set(scene, scenes) for scene in drawn)
    # Knobs that do not concern scenes leave the scenes alone.
    other = params.model_copy(update={"noise_rates": {"empty": 0.9}, "web_style_rate": 0.3, "fault_rate": 0.7,
                                      "jpeg_quality": 50, "val_fraction": 0.3, "realign_fraction": 0.0})
    assert world_scenes(other) == drawn


def test_scene_sets_are_off_by_default_and_the_default_world_keeps_its_bytes() -> None:
    assert WorldParams().scenes == "any"
    assert "scenes" not in WorldParams().model_dump()
    assert WorldParams().digest() == "57caaafba6b55a78"
    assert WorldParams(scenes="heldout").digest() != WorldParams().digest()


def test_a_generated_held_out_world_and_its_eval_set_are_held_out(tmp_path: Path) -> None:
    world = generate_world(tmp_path / "w", n=120, seed=5, scenes="heldout", eval_n=40)
    manifest = json.loads((world.dir / "world.json").read_text())
    assert manifest["params"]["scenes"] == "heldout"
    for table in ("world.parquet", "eval.parquet"):
        frame = pl.read_parquet(world.dir / table)
        for objects, background, texture in frame.select("objects", "background", "texture").iter_rows():
            assert in_scene_set(Scene.from_objects_json(objects, background, texture), "heldout")


def test_held_out_worlds_leave_out_every_scene_the_shipped_models_saw() -> None:
    """Exact check against the captioner's own training world (seed 0, n 20000: every scene the
    captioner trained on), and the shipped-scene list against a slice of every other source."""
    pytest.importorskip("curate_clip")
    from curate_clip.training.seen_scenes import SHIPPED_MODEL_SOURCES, source_scenes

    seen = shipped_scenes()
    assert len(seen) > 0 and np.all(np.diff(seen.astype(np.int64)) > 0)
    captioner_world = keys(WorldParams(n=20000, seed=0))
    quickstart = quickstart_params()
    assert quickstart.scenes == "heldout"
    assert not keys(quickstart) & captioner_world
    for source in SHIPPED_MODEL_SOURCES:
        limit = 3 if source["kind"] == "families" else 200
        for scene in source_scenes(source, limit):
            value = scene_hash(scene)
            if partition_of_hash(value) == "heldout":
                assert np.uint32(value & 0xFFFFFFFF) in seen, (source["why"], scene_key(scene))
                assert not in_scene_set(scene, "heldout")


def quickstart_params() -> WorldParams:
    spec = yaml.safe_load((REPO / "specs" / "quickstart.yaml").read_text())
    return WorldParams(**spec["source"]["params"])


def test_the_replayed_clip_generators_are_the_real_ones() -> None:
    pytest.importorskip("curate_clip")
    from curate_clip.training.seen_scenes import SHIPPED_MODEL_SOURCES, replay_is_exact

    for source in SHIPPED_MODEL_SOURCES:
        if source["kind"] != "world":
            assert replay_is_exact(source, 2 if source["kind"] == "families" else 30), source["why"]
