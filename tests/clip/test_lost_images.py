"""clip_score on a row whose image is gone from the run's store fails naming the file; before, the
row got a null score, as one without an image, and a store that had lost all its images gave a
run of null scores that said "complete". A row without an image (a failed download: a null
reference) and bytes that do not decode are still null scores."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from curate.images import ImageGone, clear_cache
from curate_clip.score import ClipScore
from tests.clip.jpegs import encoded, photo, write


@pytest.fixture(scope="module")
def step():
    step = ClipScore(ClipScore.Params(model="world-clip-tiny", device="cpu", batch_size=4))
    step.setup(None)  # type: ignore[arg-type]
    return step


@pytest.mark.parametrize("decode", ["loader", "device"])
def test_an_image_gone_from_the_store_fails_the_step(tmp_path, step, decode):
    store = tmp_path / "store"
    refs = write(store / "fp" / "artifacts" / "images", {"a": encoded(photo(40, 30, 1)), "bad": b"<html>"})
    refs = [{"shard": "fp/artifacts/images", "key": ref["key"]} for ref in refs]
    ctx = SimpleNamespace(extras={"store_dir": str(store)}, advance=lambda n: None, image_folders=None)
    step.params = step.params.model_copy(update={"decode": decode})
    clear_cache()
    _, present = step._image_embeddings([refs[0], None, refs[1]], ctx)  # type: ignore[arg-type]
    assert present.tolist() == [True, False, False]  # no image, an image that does not decode: null scores
    (store / "fp" / "artifacts" / "images" / "a.jpg").unlink()
    clear_cache()
    with pytest.raises(ImageGone, match="holds no image 'a'.*run's store"):
        step._image_embeddings([refs[0], None], ctx)  # type: ignore[arg-type]
