"""Scene identity and the train / held-out partition of the scene space.

Two images are *the same scene* (for memorisation) when their content is equal: the same objects,
each with its shape, colour, size, grid position and logo entity, on the same background colour
and texture. Rendering jitter, rescaling and JPEG quality do not count: a planted near-duplicate
is its scene re-rendered. :func:`scene_key` writes that content as one canonical string (objects in
reading order, as :class:`~curate_world.scene.Scene` keeps them), so equal content gives equal
keys and different content different keys.

The partition is a stable hash of the key (BLAKE2b with its own personalisation): the top bits put
a share :data:`HELDOUT_SHARE` of the scene space in ``heldout``, the rest in ``train``. It depends
on nothing but the scene's content, so it never moves with a world's seed, size, noise mix, web
styling or any other parameter, nor between versions of the generator that keep the vocabulary.

The world models shipped today (world CLIP, world captioner) were trained before the partition
existed, on worlds and generators drawing from the whole space; the one-object scenes are few
(61,020) and those runs drew almost all of them. So ``heldout`` also leaves out every scene
in :data:`SHIPPED_SCENES_FILE`: the held-out-partition scenes of every world and training
generator the shipped models were trained or tuned on (``python -m
curate_clip.training.seen_scenes`` rebuilds it from the recorded seeds and parameters; the
provenance is in ``SHIPPED_MODEL_SOURCES`` there). A world with ``scenes: heldout`` therefore
shares no scene with anything the shipped models saw; ``tests/world/test_partition.py`` asserts it
for the quickstart and every evaluation world in the repo.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

    from curate_world.scene import Scene

SceneSet = Literal["any", "train", "heldout"]
SCENE_SETS: tuple[str, ...] = ("any", "train", "heldout")
HELDOUT_SHARE = 0.2  # of the scene space (by hash, not by probability mass)
# Held-out-partition scenes the shipped world models saw: sorted uint32, the low 32 bits of each
# scene's hash (the partition uses the top bits, so the two are independent).
SHIPPED_SCENES_FILE = Path(__file__).with_name("data") / "shipped_model_scenes.npy"
_PERSON = b"curate-scene-v1"


def scene_key(scene: Scene) -> str:
    """Canonical content of a scene: ``texture:background|position:size:color:shape[:entity];...``."""
    objects = ";".join(
        f"{o.position}:{o.size}:{o.color}:{o.shape}" + (f":{o.entity}" if o.entity is not None else "")
        for o in scene.objects
    )
    return f"{scene.texture}:{scene.background}|{objects}"


def scene_hash(scene: Scene) -> int:
    """A stable 64-bit hash of the scene's content (same in every process, platform and version)."""
    digest = hashlib.blake2b(scene_key(scene).encode(), digest_size=8, person=_PERSON).digest()
    return int.from_bytes(digest, "big")


def partition_of_hash(value: int) -> str:
    return "heldout" if value < HELDOUT_SHARE * 2**64 else "train"


def scene_partition(scene: Scene) -> str:
    """``train`` or ``heldout``: which side of the partition the scene's content falls on."""
    return partition_of_hash(scene_hash(scene))


@lru_cache(maxsize=1)
def shipped_scenes() -> np.ndarray:
    """The sorted low-32-bit hashes of the held-out-partition scenes the shipped models saw."""
    import numpy as np

    if not SHIPPED_SCENES_FILE.exists():
        from curate_world.errors import WorldError

        raise WorldError(
            f"{SHIPPED_SCENES_FILE} is missing: without it a held-out world could show scenes the shipped "
            "world models were trained on",
            "restore it from git, or rebuild it: python -m curate_clip.training.seen_scenes",
        )
    return np.load(SHIPPED_SCENES_FILE)


def seen_by_shipped_models(value: int) -> bool:
    """Whether a scene (by :func:`scene_hash`) is one the shipped models may have seen (the low 32
    bits match: a false match, about 1 in 20,000, only leaves one more scene out)."""
    import numpy as np

    seen = shipped_scenes()
    low = np.uint32(value & 0xFFFFFFFF)
    index = int(np.searchsorted(seen, low))
    return index < len(seen) and seen[index] == low


def in_scene_set(scene: Scene, scenes: str) -> bool:
    """Whether a world drawing from ``scenes`` (any, train, heldout) may show ``scene``."""
    if scenes == "any":
        return True
    value = scene_hash(scene)
    if partition_of_hash(value) != scenes:
        return False
    return scenes == "train" or not seen_by_shipped_models(value)


MAX_DRAWS = 10_000


def sample_in_set(rng: np.random.Generator, scenes: str, draw) -> Scene:  # type: ignore[no-untyped-def]
    """``draw(rng)`` until the scene is in ``scenes`` (all from the same generator, so the result
    depends only on the generator's seed). ``any`` takes the first draw: worlds are unchanged."""
    for _ in range(MAX_DRAWS):
        scene = draw(rng)
        if in_scene_set(scene, scenes):
            return scene
    from curate_world.errors import WorldError

    raise WorldError(
        f"no scene of the '{scenes}' set in {MAX_DRAWS} draws",
        "the concept skew or entity rate leaves too few such scenes; use scenes: any",
    )
