"""What can go wrong when downloading an image, chosen per URL by the generator and acted out by
the server. ``none`` is a plain valid image."""

from __future__ import annotations

FAULTS: tuple[str, ...] = (
    "none",
    "404",  # not found
    "500",  # server error
    "slow",  # a valid image, but only after longer than a sane download timeout
    "truncated",  # a JPEG/PNG cut in half, with an honest Content-Length
    "not_image",  # an HTML page with status 200
    "oversized",  # a valid image of 4000x4000 pixels
    "redirect",  # 302 to a valid image
    "redirect_loop",  # 302 to a URL that redirects back
    "noai",  # a valid image whose response carries "X-Robots-Tag: noai, noimageai"
)
# Images a downloader may keep (a polite one drops "noai", a careful one "oversized").
DOWNLOADABLE_FAULTS = frozenset({"none", "slow", "oversized", "redirect", "noai"})


def fault_probabilities(fault_rate: float, weights: dict[str, float] | None = None) -> dict[str, float]:
    """``fault_rate`` of the URLs get a fault, shared among the kinds by ``weights`` (equal by default)."""
    kinds = FAULTS[1:]
    weights = {kind: 1.0 for kind in kinds} if weights is None else dict(weights)
    unknown = sorted(set(weights) - set(kinds))
    if unknown:
        raise ValueError(f"unknown fault kind(s) {unknown}; known: {', '.join(kinds)}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"fault weights must be non-negative with a positive sum, got {weights}")
    total = sum(weights.values())
    return {"none": 1.0 - fault_rate, **{kind: fault_rate * weights.get(kind, 0.0) / total for kind in kinds}}
