"""copy_embed on a row whose image is gone from the run's store fails naming the file; before, the
row got no descriptor, as one without an image, and near-duplicate dedup changed without a word.
A row without an image (a null reference) still gets none."""

from __future__ import annotations

import pytest

from curate.images import ImageGone, clear_cache
from curate_dedup.copy_embed import _Images


def test_an_image_gone_from_the_store_fails_the_step(tmp_path):
    store = tmp_path / "store"
    (store / "fp" / "artifacts").mkdir(parents=True)
    prepare = type("Prepare", (), {"image_size": 8})()
    refs = [None, {"shard": "fp/artifacts/00000.tar", "key": "k"}]
    images = _Images(refs, str(store), prepare)  # type: ignore[arg-type]
    clear_cache()
    pixels, present = images[0]
    assert present is False and tuple(pixels.shape) == (3, 8, 8)
    with pytest.raises(ImageGone, match="00000.tar does not exist.*run's store"):
        images[1]
