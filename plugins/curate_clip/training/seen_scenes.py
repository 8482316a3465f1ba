"""The scenes the shipped world models saw, for ``curate_world``'s held-out worlds to leave out.

    python -m curate_clip.training.seen_scenes [--out plugins/curate_world/data/shipped_model_scenes.npy]

The shipped world CLIP and world captioner were trained before the world had a train / held-out
partition of its scene space (``curate_world.partition``), on worlds and generators that draw from
the whole of it. This regenerates every scene they were trained or tuned on, from the seeds and
parameters their training records give (:data:`SHIPPED_MODEL_SOURCES`), and writes the low 32 bits
of the hash of each one that falls in the held-out partition (the only ones a held-out world could
draw). World directories need only their scene stream (no image is drawn); the CLIP's family and
minimal-pair generators are replayed with a renderer that draws nothing but consumes the random
generator exactly as the real one does (:func:`replay_is_exact` checks it against the real
generator), so the scenes are those of the shards open_clip_train read. ~15 min of one core.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from curate.display import echo

# Every scene source the shipped models were trained or tuned on (training records: curate_clip's
# training/train_world.sh and records/, curate_captioner's training/train_world.sh and TRAINING.md).
SHIPPED_MODEL_SOURCES: list[dict[str, Any]] = [
    # world CLIP (weights/world-clip-tiny.safetensors): four open_clip_train runs
    {"kind": "families", "seed": 1001, "families": 1800, "size": 48, "walk": True, "full_texts": True,
     "singles": 0.67, "focused": 0.3, "why": "world CLIP run G1"},
    {"kind": "families", "seed": 1002, "families": 1800, "size": 48, "walk": True, "full_texts": True,
     "singles": 0.67, "focused": 0.3, "why": "world CLIP run G2"},
    {"kind": "pairs", "seed": 1003, "pairs": 150000, "why": "world CLIP run P1"},
    {"kind": "pairs", "seed": 1004, "pairs": 150000, "why": "world CLIP run P2"},
    # step 5 draws train-partition scenes only (--pair-scenes train): it adds no held-out scene
    {"kind": "pairs", "seed": 1005, "pairs": 14000, "mix": {"scenes": "train", "partial": 0.4, "web_style_rate": 0.6},
     "why": "world CLIP step 5 (web-styled pairs)"},
    {"kind": "world", "seed": 2000, "n": 2000, "why": "world CLIP epochs chosen on it (curate clip eval-world)"},
    # world captioner (curate_captioner/world_model)
    {"kind": "world", "seed": 0, "n": 20000, "why": "captioner stages 1 and 2 (train split; val split reported)"},
    {"kind": "world", "seed": 100, "n": 100000, "why": "captioner encoder tuning"},
    {"kind": "world", "seed": 5, "n": 12000, "why": "captioner copy-bias selection"},
    # the earlier world CLIP the captioner's tower was tuned from (records/open_clip_train_params.txt,
    # records/tune1.json, tune2.json: world seed 1000, 8,000 images); every scene index below n is
    # taken, a superset of that world's scenes whatever its dup_fraction was
    {"kind": "world", "seed": 1000, "n": 8000, "all_indices": True, "why": "earlier world CLIP (captioner tower's start)"},
]


def recorded_world_scenes(seed: int, n: int, dup_fraction: float = 0.1, all_indices: bool = False) -> list[Any]:
    """The scenes of the default world of ``seed`` and ``n`` (scene ``j`` depends on the seed and
    ``j`` alone; the plan says how many there are)."""
    from curate_world.api import world_scene_count, world_scene

    count = n if all_indices else world_scene_count(n, seed, dup_fraction)
    return [world_scene(seed, j) for j in range(count)]


@contextlib.contextmanager
def replayed_rendering(scenes: list[Any]) -> Iterator[None]:
    """Replace the training generators' renderer by one that records the scene and draws from the
    random generator exactly what ``families.render`` draws (one jitter pair per object, then the
    web-copy coin and, when it lands, a variant), without drawing pixels."""
    from curate_world.api import sample_variant

    from curate_clip.training import families, pairs

    def render(scene, rng: np.random.Generator) -> bytes:  # type: ignore[no-untyped-def]
        for _ in scene.objects:
            rng.uniform(-1.0, 1.0, size=2)
        if rng.random() < families.WEB_COPY_SHARE:
            sample_variant(rng)
        scenes.append(scene)
        return b""

    saved = families.render, pairs.render
    families.render = pairs.render = render
    try:
        yield
    finally:
        families.render, pairs.render = saved


def generator_samples(source: dict[str, Any], limit: int | None = None) -> Iterator[tuple[str, bytes, str]]:
    from curate_clip.training.families import samples
    from curate_clip.training.pairs import PairMix, pair_samples

    if source["kind"] == "families":
        count = source["families"] if limit is None else min(limit, source["families"])
        return samples(count, source["size"], source["seed"], source["walk"], source["full_texts"],
                       source["singles"], source["focused"])
    count = source["pairs"] if limit is None else min(limit, source["pairs"])
    return pair_samples(count, source["seed"], PairMix(**source.get("mix", {})))


def generator_scenes(source: dict[str, Any], limit: int | None = None) -> list[Any]:
    scenes: list[Any] = []
    with replayed_rendering(scenes):
        for _ in generator_samples(source, limit):
            pass
    return scenes


def replay_is_exact(source: dict[str, Any], limit: int) -> bool:
    """Whether the replay writes the same keys and texts as the real generator (every text is
    drawn after the image's rendering, so equal texts mean equal random streams)."""
    real = [(key, text) for key, _, text in generator_samples(source, limit)]
    with replayed_rendering([]):
        replayed = [(key, text) for key, _, text in generator_samples(source, limit)]
    return real == replayed


def source_scenes(source: dict[str, Any], limit: int | None = None) -> list[Any]:
    if source["kind"] == "world":
        n = source["n"] if limit is None else min(limit, source["n"])
        return recorded_world_scenes(source["seed"], n, all_indices=source.get("all_indices", False) or limit is not None)
    return generator_scenes(source, limit)


def main(argv: list[str] | None = None) -> int:
    from curate_world.api import SHIPPED_SCENES_FILE, partition_of_hash, scene_hash

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SHIPPED_SCENES_FILE)
    parser.add_argument("--limit", type=int, default=None, help="per source (a quick look; not for shipping)")
    args = parser.parse_args(argv)
    held: set[int] = set()
    report = []
    for source in SHIPPED_MODEL_SOURCES:
        started = time.process_time()
        hashes = {scene_hash(scene) for scene in source_scenes(source, args.limit)}
        heldout = {h & 0xFFFFFFFF for h in hashes if partition_of_hash(h) == "heldout"}
        held |= heldout
        report.append({**source, "distinct_scenes": len(hashes), "heldout_partition": len(heldout),
                       "cpu_seconds": round(time.process_time() - started, 1)})
        echo(json.dumps(report[-1]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, np.array(sorted(held), dtype=np.uint32))
    echo(f"{len(held)} held-out-partition scenes seen by the shipped models -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
