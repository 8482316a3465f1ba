"""Planted near-duplicates: one scene rendered several times, each copy a little different, as the
same picture is re-uploaded, resized and recompressed across the web."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

RESCALES = (0.75, 1.0, 1.25, 1.5)
JPEG_QUALITIES = (55, 70, 85, 95)
DUP_JITTER = 1.5  # pixels; a singleton moves by at most 1


@dataclass(frozen=True)
class Variant:
    """How one row's image is made from its scene."""

    scale: float = 1.0  # output side = round(image_size * scale), resized after drawing
    quality: int | None = None  # JPEG quality; None means the world's default
    jitter: float = 1.0


def plan_groups(n: int, dup_fraction: float, max_group_size: int, rng: np.random.Generator) -> list[int]:
    """Sizes of the scenes' row groups, summing to ``n``: about ``dup_fraction`` of the rows sit in
    groups of 2..``max_group_size``, the rest are singletons (size 1)."""
    target = round(n * dup_fraction)
    sizes: list[int] = []
    planted = 0
    while target - planted >= 2:
        size = min(int(rng.integers(2, max_group_size + 1)), target - planted)
        sizes.append(size)
        planted += size
    return sizes + [1] * (n - planted)


def sample_variant(rng: np.random.Generator) -> Variant:
    return Variant(
        scale=float(RESCALES[int(rng.integers(len(RESCALES)))]),
        quality=int(JPEG_QUALITIES[int(rng.integers(len(JPEG_QUALITIES)))]),
        jitter=DUP_JITTER,
    )
