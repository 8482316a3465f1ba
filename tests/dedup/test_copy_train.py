"""The world copy detector's training data and training command: a near variant is one change
away from its scene, a batch is copies of scenes and of their near variants, and a trained model
saves, loads and embeds the same."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from curate_world.testing import scenes, seeds  # noqa: E402
from hypothesis import given, settings  # noqa: E402

from curate_dedup.copydetect.worlddata import batch, near_variant, web_copy  # noqa: E402


def differences(a, b) -> int:
    return sum(getattr(a, field) != getattr(b, field) for field in ("shape", "color", "size", "position", "entity"))


@settings(max_examples=300, deadline=None)
@given(scenes(), seeds)
def test_a_near_variant_changes_exactly_one_thing(scene, seed):
    variant = near_variant(scene, np.random.default_rng(seed))
    if variant is None:
        return
    assert variant != scene
    changed_backdrop = (variant.background != scene.background) + (variant.texture != scene.texture)
    if changed_backdrop:
        assert changed_backdrop == 1 and variant.objects == scene.objects
        return
    before, after = list(scene.objects), list(variant.objects)
    if len(after) == len(before) + 1:  # one more object, a plain copy of one already there
        extra = [o for o in after if o not in before]
        assert len(extra) == 1 and extra[0].entity is None
        assert any(differences(extra[0], o) == 1 + (o.entity is not None) and extra[0].position != o.position
                   for o in before)
    elif len(after) == len(before) - 1:  # one fewer
        assert all(o in before for o in after)
    else:  # one object changed in one attribute (a logo: another entity's, its shape and colour with it)
        gone = [o for o in before if o not in after]
        new = [o for o in after if o not in before]
        assert len(gone) == len(new) == 1
        if gone[0].entity is None or new[0].entity == gone[0].entity:  # a logo can move or change size
            assert differences(gone[0], new[0]) == 1
        else:
            assert new[0].entity is not None and new[0].position == gone[0].position


@settings(max_examples=30, deadline=None)
@given(scenes(), seeds)
def test_a_web_copy_is_a_64_pixel_rgb_image_like_its_scene(scene, seed):
    from curate_world.render import render_scene

    copy = web_copy(scene, np.random.default_rng(seed))
    assert copy.shape == (64, 64, 3) and copy.dtype == np.uint8
    clean = np.asarray(render_scene(scene, 64), dtype=np.float32)
    assert np.abs(copy.astype(np.float32) - clean).mean() < 40  # jittered and recompressed, not another picture


def test_a_batch_holds_two_copies_of_each_scene_and_of_its_near_variant():
    images, labels = batch(np.random.default_rng(0), 5)
    assert images.shape == (20, 64, 64, 3)
    assert labels.tolist() == [label for label in range(10) for _ in range(2)]
    assert not np.array_equal(images[0], images[1])  # two copies, not one image twice


def test_training_writes_a_model_directory_that_loads_and_embeds_the_same(tmp_path):
    import torch

    from curate_dedup.copydetect import loader
    from curate_dedup.copydetect.train import main, to_tensor

    assert main(["--out", str(tmp_path / "m"), "--steps", "3", "--scenes", "4", "--threads", "1"]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["threshold"] == 0.94 and config["trained"]["steps"] == 3
    assert [r["step"] for r in json.loads((tmp_path / "m" / "training.json").read_text())["history"]] == [0, 2]
    loaded = loader.load(str(tmp_path / "m"))
    assert loaded.name.startswith("curate-copy-cnn@") and loaded.threshold == 0.94
    images, _ = batch(np.random.default_rng(1), 2)
    from PIL import Image

    prepared = torch.stack([loaded.preparer()(Image.fromarray(image)) for image in images])
    assert torch.allclose(prepared, to_tensor(images, config), atol=1e-6)  # training and use see the same input
    vectors = loaded.embed(prepared)
    assert vectors.shape == (8, 128) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    again = main(["--out", str(tmp_path / "n"), "--steps", "2", "--scenes", "4", "--init", str(tmp_path / "m")])
    assert again == 0 and json.loads((tmp_path / "n" / "config.json").read_text())["trained"]["init"] == str(tmp_path / "m")
