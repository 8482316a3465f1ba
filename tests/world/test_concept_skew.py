"""The long-tail knob: skewed concepts when asked, the very same worlds when not."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
from curate_world.generate import generate_world
from curate_world.params import WorldParams
from curate_world.scene import sample_scene
from curate_world.vocab import ENTITIES, SHAPES

# world.parquet's rows (as CSV, so a Parquet writer upgrade does not matter) of
# `generate_world(n=200, seed=3)` before the knob existed (commit ef2fd9e).
DEFAULT_WORLD_ROWS_SHA256 = "fcf2195d911f3e99389bfac7196f0c759f55a17d8a56c21d8adde1a9b97a15e1"


def test_a_default_world_is_byte_identical_to_worlds_made_before_the_knob(tmp_path: Path) -> None:
    world = generate_world(tmp_path / "w", n=200, seed=3)
    rows = pl.read_parquet(world.world_table).write_csv()
    assert hashlib.sha256(rows.encode()).hexdigest() == DEFAULT_WORLD_ROWS_SHA256
    manifest = json.loads((world.dir / "world.json").read_text())
    assert "concept_skew" not in manifest["params"]
    assert WorldParams().digest() == "57caaafba6b55a78"  # cache directory and stable port unchanged


def test_skewed_scenes_have_a_long_tail_of_shapes_and_entities() -> None:
    skew = 1.5
    shapes: Counter[str] = Counter()
    entities: Counter[str] = Counter()
    for i in range(3000):
        scene = sample_scene(np.random.default_rng([7, i]), entity_rate=0.5, concept_skew=skew)
        shapes.update(obj.shape for obj in scene.objects if obj.entity is None)
        entities.update([scene.entity] if scene.entity else [])
    # Plain objects: shape k has weight 1/k^1.5, so the head is 8^1.5 ≈ 22.6 times the tail.
    assert shapes[SHAPES[0]] > 10 * shapes[SHAPES[-1]]
    expected = 1 / sum(1 / k**skew for k in range(1, len(SHAPES) + 1))
    assert abs(shapes[SHAPES[0]] / sum(shapes.values()) - expected) < 0.03
    assert entities[ENTITIES[0].name] > 20 * max(entities[ENTITIES[-1].name], 1) / 2


def test_the_knob_changes_the_world_and_its_id(tmp_path: Path) -> None:
    skewed = generate_world(tmp_path / "s", n=100, seed=3, concept_skew=1.0)
    plain = generate_world(tmp_path / "p", n=100, seed=3)
    assert skewed.world_table.read_bytes() != plain.world_table.read_bytes()
    assert json.loads((skewed.dir / "world.json").read_text())["params"]["concept_skew"] == 1.0
    assert WorldParams(concept_skew=1.0).digest() != WorldParams().digest()
