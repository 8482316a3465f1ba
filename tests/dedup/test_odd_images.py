"""copy_embed sees each file as every step does (curate.images.decode_rgb), and a decompression
bomb is a row without a descriptor (it failed the whole step: DecompressionBombError is no OSError)."""

from __future__ import annotations

import numpy as np
import torch
from curate_dedup.copy_embed import _Images

from curate.images import clear_cache
from tests.odd_images import write_odd_images


class _Pixels:
    image_size = 8

    def __call__(self, image):
        return torch.from_numpy(np.array(image))


def test_copy_embed_decodes_as_every_step_does(tmp_path):
    refs = write_odd_images(tmp_path / "images")
    clear_cache()
    images = _Images([refs["transparent"], refs["rotated"], refs["bomb"], refs["html"]], None, _Pixels())
    transparent, present = images[0]
    assert present and transparent[4, 2].tolist() == [255, 255, 255]  # was [0, 0, 0]
    rotated, present = images[1]
    assert present and tuple(rotated.shape) == (32, 16, 3)
    for index in (2, 3):
        pixels, present = images[index]
        assert not present and tuple(pixels.shape) == (3, 8, 8)
