"""Minimal pairs, the world CLIP's hard-negative data for open_clip_train: the partner's text is
the scene's wrong-attribute alt-text and true of the partner, the scene's own text is false of the
partner, and open_clip_train puts both samples of a pair in one batch."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from curate_clip.training.pairs import pair_samples, true_of, write_pair_shards, wrong_partner
from curate_world.testing import scenes, seeds
from hypothesis import given, settings
from PIL import Image


def content(scene):
    return Counter((o.shape, o.color, o.entity) for o in scene.objects)


@settings(max_examples=200, deadline=None)
@given(scenes(), seeds)
def test_the_partner_differs_in_one_kind_of_object_and_its_text_is_the_scenes_wrong_alt_text(scene, seed):
    found = wrong_partner(scene, np.random.default_rng(seed))
    if found is None:
        return
    partner, text, _changed = found
    assert (partner.background, partner.texture) == (scene.background, scene.texture)
    removed, added = content(scene) - content(partner), content(partner) - content(scene)
    assert removed or added
    # one kind changed: recoloured or reshaped (every object of it), or more or fewer of it
    assert len(set(removed)) <= 1 and len(set(added)) <= 1
    assert true_of(text, partner) and not true_of(text, scene, _changed)


@settings(max_examples=200, deadline=None)
@given(scenes(), seeds)
def test_the_world_never_writes_a_wrong_attribute_text_that_reads_as_true(scene, seed):
    """``true_of`` agrees with the world's labels: a wrong-attribute alt-text is never true of
    its scene (counting the swapped kind exactly), a faithful one always is."""
    from curate_world.alttext import write_faithful, write_wrong_attribute, wrong_mention

    rng = np.random.default_rng(seed)
    assert true_of(write_faithful(scene, rng, name_entity=True).text, scene)
    wrong = write_wrong_attribute(scene, np.random.default_rng(seed), name_entity=bool(seed % 2))
    changed = wrong_mention(scene, np.random.default_rng(seed), name_entity=bool(seed % 2))  # the same draws
    new = changed.mentions[changed.index]
    # Made to look like a logo that the text names without describing it ("Zorblax Tower, a purple
    # hexagon" of a purple-hexagon logo and a purple circle), the wrong object reads as the logo
    # and the text as a partial true one: wrong_partner leaves such texts out.
    lookalike = any(o.entity is not None and (o.color, o.shape) == (new.color, new.shape) for o in scene.objects)
    if not wrong.detail.startswith("count") and not lookalike:
        assert not true_of(wrong.text, scene)


@settings(max_examples=150, deadline=None)
@given(seeds)
def test_each_text_is_true_of_its_own_image_and_they_differ(seed):
    from curate_clip.training.pairs import make_pair

    scene, text, partner, wrong = make_pair(np.random.default_rng(seed))
    assert true_of(text, scene) and true_of(wrong, partner)
    assert scene != partner and text != wrong


def test_pairs_are_deterministic_and_consecutive():
    first = list(pair_samples(60, seed=4))
    assert first == list(pair_samples(60, seed=4))
    keys = [key for key, _, _ in first]
    assert len(keys) == 120 and all(a.split("_")[0] == b.split("_")[0] for a, b in zip(keys[::2], keys[1::2]))
    for _, image, _ in first[:6]:
        assert Image.open(io.BytesIO(image)).format == "JPEG"
    assert sum(key.endswith("_a") for key in keys) >= 50  # a few pairs are page furniture


@pytest.mark.filterwarnings("ignore")  # webdataset warns about leaked handles
def test_with_the_sample_shuffle_off_open_clip_train_keeps_every_pair_in_one_batch(tmp_path):
    import argparse

    import open_clip_train.data as wds_data
    from curate_clip.training.train import sample_shuffle

    pairs = 150
    pattern, count = write_pair_shards(tmp_path / "shards", pairs=pairs, seed=5, per_shard=40)
    assert count == 2 * pairs
    texts_of = {}
    for key, _image, text in pair_samples(pairs, 5):
        texts_of.setdefault(key.split("_")[0], []).append(text)
    written = Counter(text for texts in texts_of.values() for text in texts)
    # a short text ("a red circle") can be two pairs' text: follow the pairs whose texts are their own
    texts_of = {pair: texts for pair, texts in texts_of.items() if all(written[t] == 1 for t in texts)}
    assert len(texts_of) > pairs * 0.8
    args = argparse.Namespace(train_data=pattern, train_num_samples=count, dataset_resampled=False,
                              train_data_upsampling_factors=None, seed=0, batch_size=16, workers=0, world_size=1)
    with sample_shuffle(1):
        loader = wds_data.get_wds_dataset(args, lambda image: 0, is_train=True,
                                          tokenizer=lambda text: [text]).dataloader
        batches = [texts for _images, texts in loader]
    assert len(batches) >= count // 16  # open_clip_train rounds the epoch up to whole batches
    for texts in batches:
        within = Counter(texts)
        split = [pair for pair, (a, b) in texts_of.items() if (a in within) != (b in within)]
        assert not split, split


def test_an_odd_shard_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_pair_shards(tmp_path, pairs=2, per_shard=3)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # open_clip_train and webdataset warn about CPU runs and leaked handles
def test_open_clip_train_trains_on_pairs_from_a_checkpoint_and_records_the_data(tmp_path):
    import json

    from curate_clip.training.train import main

    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--pairs", "16", "--sample-shuffle", "1", "--epochs", "1", "--batch-size", "8", "--warmup", "1",
              "--threads", "1"]
    import open_clip_train.data as wds_data

    default = wds_data._SAMPLE_SHUFFLE_SIZE
    assert main(["--out", str(first), *common]) == 0
    assert wds_data._SAMPLE_SHUFFLE_SIZE == default  # --sample-shuffle 1 lasted only for its run
    checkpoint = first / "logs" / "world-clip" / "checkpoints" / "epoch_1.pt"
    assert main(["--out", str(second), "--init", str(checkpoint), "--seed", "7", *common]) == 0
    record = json.loads((second / "training.json").read_text())
    assert record["data"] == {"pairs": 16, "sample_shuffle": 1, "seed": 7, "pair_scenes": "any", "pair_partial": 0.0,
                              "pair_web_style": 0.0, "pair_shape": 0.0}
    assert record["samples_per_epoch"] == 32
    assert ["--pretrained", str(checkpoint)] == record["open_clip_train_args"][-2:]


@pytest.mark.parametrize("extra, message", [
    (["--batch-size", "7"], "even --batch-size"),
    (["--families", "3"], "give one of them"),
    (["--pair-shape", "1.5"], "shape is a share in"),
    (["--pair-partial", "-0.1"], "partial is a share in"),
])
def test_train_world_refuses_pairs_that_a_batch_would_split_or_two_kinds_of_data(tmp_path, extra, message):
    from curate_clip.training.train import main

    with pytest.raises(SystemExit, match=message):
        main(["--out", str(tmp_path), "--pairs", "4", *extra])


@settings(max_examples=60, deadline=None)
@given(seeds)
def test_a_train_scenes_mix_keeps_both_scenes_of_a_pair_out_of_held_out_worlds(seed):
    """``PairMix(scenes="train")``: both images of a pair are train-partition scenes, so no
    ``scenes: heldout`` world shows them; texts may be web-styled and partial, and stay true."""
    from curate_clip.training.pairs import PairMix, make_pair
    from curate_world.api import scene_partition

    scene, text, partner, wrong = make_pair(np.random.default_rng(seed), PairMix("train", partial=1.0))
    assert scene_partition(scene) == scene_partition(partner) == "train"
    assert true_of(text, scene) and true_of(wrong, partner)
    styled = make_pair(np.random.default_rng(seed), PairMix("train", partial=0.4, web_style_rate=1.0))
    assert scene_partition(styled[0]) == scene_partition(styled[2]) == "train"


@settings(max_examples=40, deadline=None)
@given(seeds)
def test_a_shape_mix_gets_a_shape_wrong_and_the_pair_stays_a_minimal_pair(seed):
    """``PairMix(shape=1.0)``: the partner is the scene with shapes changed (as many objects, the
    same colours), its text is the scene's wrong alt-text and true of it, the scene's own text not."""
    from curate_clip.training.pairs import PairMix, make_pair, shape_changed

    scene, text, partner, wrong = make_pair(np.random.default_rng(seed), PairMix("train", partial=0.4, shape=1.0))
    assert shape_changed(scene, partner)
    assert true_of(text, scene) and true_of(wrong, partner) and not true_of(wrong, scene)


def test_the_default_mix_draws_the_shipped_runs_pairs_and_a_held_out_mix_is_refused():
    from curate_clip.training.pairs import PairMix

    assert list(pair_samples(20, seed=1003, mix=PairMix())) == list(pair_samples(20, seed=1003))
    assert list(pair_samples(20, seed=1003, mix=PairMix("train"))) != list(pair_samples(20, seed=1003))
    with pytest.raises(ValueError, match="never 'heldout'"):
        PairMix("heldout")


def test_synonym_init_copies_each_one_token_synonym_row_from_its_canonical_word(tmp_path):
    import torch
    from curate_clip.training.synonyms import load_state, synonym_init, synonym_rows
    from open_clip.tokenizer import SimpleTokenizer

    from curate_clip.models import WORLD_CHECKPOINT as WORLD_WEIGHTS

    copied, skipped = synonym_rows()
    assert {"violet", "grey", "disc", "discs"} <= {s for s, *_ in copied} and "rhombus" in skipped
    out, done = synonym_init(WORLD_WEIGHTS, tmp_path / "init.pt")
    table = load_state(out)["token_embedding.weight"]
    before = load_state(WORLD_WEIGHTS)["token_embedding.weight"]
    tokens = SimpleTokenizer()
    violet, purple = tokens.encode("violet")[0], tokens.encode("purple")[0]
    assert torch.equal(table[violet], before[purple])
    assert done["copied"]["violet"] == "purple"
    unchanged = [i for i in range(len(table)) if i not in {t for _, _, t, _ in copied}]
    assert torch.equal(table[unchanged], before[unchanged])
