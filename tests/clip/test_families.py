"""Minimal-pair families, the world CLIP's training data: every variant is one change away, the
shards are deterministic, and open_clip_train reads them."""

from __future__ import annotations

import io
import tarfile
from collections import Counter

import numpy as np
import pytest
from curate_clip.training.families import family, focused_text, mutate, samples, write_family_shards
from curate_world.testing import scenes, seeds
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image


def content(scene):
    return Counter((o.shape, o.color, o.size, o.entity) for o in scene.objects)


@settings(max_examples=200, deadline=None)
@given(scenes(), seeds)
def test_a_mutation_changes_exactly_one_thing(scene, seed):
    changed = mutate(scene, np.random.default_rng(seed))
    if changed is None:
        return
    assert changed != scene
    assert (changed.background, changed.texture) == (scene.background, scene.texture)
    before, after = content(scene), content(changed)
    removed, added = before - after, after - before
    count = len(scene.objects)
    if len(changed.objects) == count + 1:  # one more of a kind already there
        assert not removed and sum(added.values()) == 1 and next(iter(added)) in before
    elif len(changed.objects) == count - 1:  # one fewer
        assert not added and sum(removed.values()) == 1
    else:  # one object recoloured, reshaped, or another entity's logo, in place
        assert sum(removed.values()) == sum(added.values()) == 1
        moved = {o.position for o in scene.objects} ^ {o.position for o in changed.objects}
        assert not moved
        (old,), (new,) = removed, added
        if old[3] is None:
            assert new[3] is None and (old[0] != new[0]) + (old[1] != new[1]) == 1 and old[2] == new[2]
        else:
            assert new[3] is not None and new[3] != old[3]


@settings(max_examples=50, deadline=None)
@given(seeds, st.integers(1, 40), st.booleans())
def test_a_family_is_distinct_scenes_each_one_change_from_the_first_or_from_an_earlier_one(seed, size, walk):
    members = family(np.random.default_rng(seed), size, walk)
    assert 1 <= len(members) <= size
    assert len(set(members)) == len(members)
    for index, member in enumerate(members[1:], start=1):
        parents = members[:index] if walk else members[:1]
        assert any(one_change(parent, member) for parent in parents)


def one_change(a, b) -> bool:
    if (a.background, a.texture) != (b.background, b.texture):
        return False
    removed, added = content(a) - content(b), content(b) - content(a)
    return sum(removed.values()) + sum(added.values()) in (1, 2) and max(
        sum(removed.values()), sum(added.values())) == 1


def test_samples_are_deterministic_and_families_are_consecutive():
    first = list(samples(6, 8, seed=3, walk=True, full_texts=True, singles=0.5))
    assert first == list(samples(6, 8, seed=3, walk=True, full_texts=True, singles=0.5))
    families = [key.split("_")[0] for key, _, _ in first]
    assert families == sorted(families)  # siblings (and the singles after them) are written together
    for _, image, _ in first[:10]:
        assert Image.open(io.BytesIO(image)).format == "JPEG"
    kinds = Counter(key.split("_")[1][0] for key, _, _ in first)
    assert kinds["0"] >= 6 and kinds["s"] > 0


@settings(max_examples=200, deadline=None)
@given(scenes(), seeds)
def test_the_texts_a_family_member_gets_name_every_object_right(scene, seed):
    from curate_clip.training.data import scene_texts
    from curate_clip.training.families import FULL_TEXT_WEIGHTS
    from curate_world.attributes import score_caption

    texts = scene_texts(scene, 5, np.random.default_rng(seed))
    for index, weight in enumerate(FULL_TEXT_WEIGHTS):
        if weight:
            score = score_caption(texts[index], scene)
            assert score.pair_recall == 1.0 and score.pair_precision == 1.0, texts[index]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # open_clip_train and webdataset warn about CPU runs and leaked handles
def test_open_clip_train_trains_on_family_shards_and_the_export_loads_as_the_world_clip(tmp_path):
    from curate_clip.models import load_clip
    from curate_clip.training.train import main

    out, weights = tmp_path / "run", tmp_path / "w.safetensors"
    assert main(["--out", str(out), "--families", "12", "--family-size", "8", "--family-walk", "--singles", "0.5",
                 "--family-full-texts", "--siglip", "--epochs", "1", "--batch-size", "32", "--warmup", "1",
                 "--threads", "1", "--export", str(weights)]) == 0
    assert weights.stat().st_size > 1_000_000
    assert load_clip(checkpoint=str(weights), device="cpu").model is not None  # the SigLIP bias is not shipped
    with tarfile.open(next((out / "shards").glob("*.tar"))) as tar:
        names = tar.getnames()
    assert {name.rsplit(".", 1)[1] for name in names} == {"jpg", "txt", "json"}


@settings(max_examples=150, deadline=None)
@given(scenes(), seeds)
def test_a_focused_text_names_only_what_the_variant_changed(scene, seed):
    from curate_world.attributes import extract_attributes

    rng = np.random.default_rng(seed)
    variant = mutate(scene, rng)
    if variant is None:
        return
    text = focused_text(scene, variant, rng)
    new = [o for o in variant.objects if o not in scene.objects]
    if not new:  # the variant only lost an object: nothing of its own to name
        assert text is None
        return
    said = extract_attributes(text)
    assert said.object_count == 1 or said.entities  # one object: the changed one, or its logo's name
    assert set(said.pairs) <= {(o.color, o.shape) for o in new}
    assert set(said.entities) <= {o.entity for o in new}


@pytest.mark.filterwarnings("ignore")  # webdataset warns about leaked handles
def test_a_sample_shuffle_near_the_batch_size_keeps_siblings_in_one_batch(tmp_path):
    """--sample-shuffle sets the buffer open_clip_train builds its training pipeline with: at the
    family size, a batch holds few families (siblings are each other's hard negatives); at
    open_clip_train's default (5,000) the same shards give batches of strangers."""
    import argparse

    import open_clip_train.data as wds_data
    from curate_clip.training.train import sample_shuffle

    size, families = 8, 40
    pattern, count = write_family_shards(tmp_path / "shards", families=families, size=size, seed=3, walk=True,
                                         full_texts=True, per_shard=10_000)
    family_of = {}
    for key, _image, text in samples(families, size, 3, walk=True, full_texts=True):
        family_of.setdefault(text, set()).add(key.split("_")[0])

    def families_per_batch() -> float:
        args = argparse.Namespace(train_data=pattern, train_num_samples=count, dataset_resampled=False,
                                  train_data_upsampling_factors=None, seed=0, batch_size=size, workers=0,
                                  world_size=1)
        loader = wds_data.get_wds_dataset(args, lambda image: 0, is_train=True, tokenizer=lambda text: [text]).dataloader
        counts = [len(set.union(*(family_of[text] for text in texts))) for _images, texts in loader]
        return sum(counts) / len(counts)

    default = families_per_batch()
    before = wds_data._SAMPLE_SHUFFLE_SIZE
    with sample_shuffle(size):
        assert wds_data._SAMPLE_SHUFFLE_SIZE == size
        kept = families_per_batch()
    assert wds_data._SAMPLE_SHUFFLE_SIZE == before  # the next run in this process gets the default again
    assert kept <= 4 and default >= 6, default
