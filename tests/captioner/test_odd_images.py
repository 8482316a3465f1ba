"""The captioner sees each file as every step does (curate.images.decode_rgb): it captioned the
black under transparent pixels ("… on a plain black background") and a turned photo sideways."""

from __future__ import annotations

from curate_captioner.data import open_images

from curate.images import clear_cache
from tests.odd_images import write_odd_images


def test_the_captioner_decodes_as_every_step_does(tmp_path):
    refs = write_odd_images(tmp_path / "images")
    clear_cache()
    paths = [str(tmp_path / "images" / name) for name in ("transparent.png", "rotated.jpg", "bomb.png")]
    by_path = open_images(paths)
    by_ref = open_images([refs["transparent"], refs["rotated"], refs["truncated"]])
    for transparent, rotated, nothing in (by_path, by_ref):
        assert transparent.getpixel((2, 4)) == (255, 255, 255)  # was (0, 0, 0)
        assert rotated.size == (16, 32) and rotated.getpixel((12, 4))[0] > 200
        assert nothing is None
