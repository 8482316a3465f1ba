"""A run made before the steps that look at pixels decoded through ``curate.images.decode_rgb``
(49fd555 and earlier: EXIF orientation ignored, transparency dropped to black, 16-bit samples
clipped white) is not reused by them after an upgrade: their version is part of their fingerprint,
and it moved past the one those runs were made with.

Measured on such a run (a folder of four images, clip_score re-run by the new code into the same
run directory): an RGBA PNG kept 0.395 where a fresh run scores 0.438, a 16-bit PNG 0.434 where it
scores 0.350, an EXIF-turned JPEG 0.207 where it scores 0.219; an RGB JPEG 0.284 both times."""

from __future__ import annotations

import importlib

import pytest

BEFORE_DECODE_RGB = "1"  # each step's version at 49fd555
PIXEL_STEPS = [("curate_clip.score", "ClipScore"), ("curate_dedup.copy_embed", "CopyEmbed"),
               ("curate_captioner.step", "Realign"), ("curate_captioner.step", "TrainCaptioner"),
               ("curate_captioner.step", "CaptionPairs"), ("curate_captioner.step", "PreferenceCaptioner")]


@pytest.mark.parametrize(("module", "name"), PIXEL_STEPS)
def test_a_pixel_step_made_before_decode_rgb_is_not_reused(module: str, name: str) -> None:
    step = getattr(importlib.import_module(module), name)
    assert step.version != BEFORE_DECODE_RGB, (
        f"{name} decodes with decode_rgb, but keeps the version runs made before it have in their "
        "fingerprints: an upgraded re-run reuses what the old decoder saw")

