"""Scenes: what an image shows, as ground truth, and how to sample one from a random generator."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from curate_world.vocab import (
    BACKGROUNDS,
    COLORS,
    ENTITIES,
    ENTITY_BY_NAME,
    POSITIONS,
    SHAPES,
    SIZES,
    TEXTURES,
    colors_visible_on,
)

if TYPE_CHECKING:
    import numpy as np

POSITION_ORDER: dict[str, int] = {name: index for index, name in enumerate(POSITIONS)}
COLOR_RANK: dict[str, int] = {name: index for index, name in enumerate(COLORS)}
OBJECT_COUNT_WEIGHTS = (0.4, 0.35, 0.25)  # 1, 2 or 3 objects
TEXTURE_WEIGHTS = (0.4, 0.2, 0.2, 0.2)  # plain is the most common background, as on the web


@dataclass(frozen=True)
class SceneObject:
    """One drawn object. ``entity`` is set only on an entity's logo, whose shape and color are then
    the entity's signature and which carries the entity's marker."""

    shape: str
    color: str
    size: str
    position: str
    entity: str | None = None

    def to_dict(self) -> dict[str, str]:
        data = {"shape": self.shape, "color": self.color, "size": self.size, "position": self.position}
        if self.entity is not None:
            data["entity"] = self.entity
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneObject:
        return cls(data["shape"], data["color"], data["size"], data["position"], data.get("entity"))


@dataclass(frozen=True)
class Scene:
    """Objects in reading order of their positions (top left to bottom right), so two scenes with the
    same content are equal and describe to the same text."""

    objects: tuple[SceneObject, ...]
    background: str
    texture: str

    def __post_init__(self) -> None:
        problems = []
        for obj in self.objects:
            if obj.shape not in SHAPES or obj.color not in COLORS or obj.size not in SIZES:
                problems.append(f"unknown attribute in {obj}")
            if obj.position not in POSITIONS:
                problems.append(f"unknown position {obj.position!r}")
            if obj.entity is not None and obj.entity not in ENTITY_BY_NAME:
                problems.append(f"unknown entity {obj.entity!r}")
        if self.background not in BACKGROUNDS or self.texture not in TEXTURES:
            problems.append(f"unknown background {self.texture} {self.background}")
        if [POSITION_ORDER[o.position] for o in self.objects] != sorted(
            {POSITION_ORDER[o.position] for o in self.objects}
        ):
            problems.append("objects must have distinct positions, in reading order")
        if problems:
            raise ValueError("invalid scene: " + "; ".join(problems))

    @property
    def entity(self) -> str | None:
        return next((obj.entity for obj in self.objects if obj.entity is not None), None)

    def objects_json(self) -> str:
        return json.dumps([obj.to_dict() for obj in self.objects], separators=(",", ":"))

    @classmethod
    def from_objects_json(cls, text: str, background: str, texture: str) -> Scene:
        return cls(tuple(SceneObject.from_dict(d) for d in json.loads(text)), background, texture)


def sorted_objects(objects: list[SceneObject]) -> tuple[SceneObject, ...]:
    return tuple(sorted(objects, key=lambda obj: POSITION_ORDER[obj.position]))


def entity_logo(name: str, position: str, size: str = "large") -> SceneObject:
    entity = ENTITY_BY_NAME[name]
    return SceneObject(entity.shape, entity.color, size, position, entity.name)


def _pick(rng: np.random.Generator, count: int, skew: float | None, ranks: list[int] | None = None) -> int:
    """An index below ``count``: uniform, or with weight 1/(rank+1)^skew (rank: the index in the
    full vocabulary table, so a color keeps its place in the tail on every background)."""
    if skew is None:
        return int(rng.integers(count))
    weights = [1.0 / (rank + 1) ** skew for rank in (ranks if ranks is not None else range(count))]
    total = sum(weights)
    return int(rng.choice(count, p=[w / total for w in weights]))


def sample_scene(rng: np.random.Generator, *, entity_rate: float = 0.3, single_label: bool = False,
                 concept_skew: float | None = None) -> Scene:
    """Sample a scene: 1-3 objects at distinct grid positions, at most one of them an entity logo.

    ``single_label`` makes the first sampled object (the entity logo, when there is one) the only
    large one, so the image has one unambiguous shape/color/entity class for zero-shot evaluation.
    """
    count = int(rng.choice(len(OBJECT_COUNT_WEIGHTS), p=OBJECT_COUNT_WEIGHTS)) + 1
    entity = ENTITIES[_pick(rng, len(ENTITIES), concept_skew)] if rng.random() < entity_rate else None
    # Choose the background first among those the logo shows up on, then object colors that show up on it.
    backgrounds = [b for b in BACKGROUNDS if entity is None or entity.color in colors_visible_on(b)]
    background = backgrounds[int(rng.integers(len(backgrounds)))]
    texture = list(TEXTURES)[int(rng.choice(len(TEXTURES), p=TEXTURE_WEIGHTS))]
    palette = colors_visible_on(background)
    positions = [list(POSITIONS)[i] for i in rng.choice(len(POSITIONS), size=count, replace=False)]
    sizes = list(SIZES)
    objects = []
    for index, position in enumerate(positions):
        if index == 0 and entity is not None:
            objects.append(entity_logo(entity.name, position))
            continue
        if single_label:
            size = "large" if index == 0 else sizes[int(rng.integers(2))]
        else:
            size = sizes[int(rng.integers(len(sizes)))]
        shape = SHAPES[_pick(rng, len(SHAPES), concept_skew)]
        color = palette[_pick(rng, len(palette), concept_skew, [COLOR_RANK[c] for c in palette])]
        objects.append(SceneObject(shape, color, size, position))
    return Scene(sorted_objects(objects), background, texture)
