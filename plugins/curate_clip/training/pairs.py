"""Minimal pairs → WebDataset shards: the hard-negative loop's batches, written as plain samples.

``tune-world`` (``training/hardneg.py``) gets its 0.96 AUC from one thing a random batch lacks:
in an image's softmax, its own text — often a partial one — competes with a text that names every
object and gets one attribute wrong. open_clip_train has no input for extra negative texts, but
every text in a batch is a negative for every other image in it. So here a sample comes with a
partner (:func:`wrong_partner`): the scene's wrong-attribute alt-text, written by the world's own
writer, paired with the scene it is true of — the mentioned objects recoloured, reshaped, or
counted as the text says. For the first image that text is exactly the loop's hard negative; the
first image's own text is any of its true texts, partial ones included, drawn as the loop draws
them. The pair is written as two consecutive samples and, with open_clip_train's sample shuffle
turned off (``--sample-shuffle 1``) and even shard and batch sizes, lands in the same batch;
shards are shuffled as usual and the pairs are in random order.

A partial text of the first image may be true of the partner too (a colours-only text when a
shape changed); in the partner's softmax it would be a false negative, so another of the scene's
texts is taken when the world's attribute extractor reads it as true of the partner
(:func:`true_of`). A change that cannot be drawn (a colour that would not show on the background,
no free position for another object) is drawn again, up to :data:`DRAWS` times per scene.

Three knobs (:class:`PairMix`; all off by default, which draws exactly the pairs of the shipped
runs P1 and P2): ``scenes="train"`` keeps both scenes of every pair in the world's train partition
(``curate_world.partition``), so a held-out world never shows a scene the model trained on;
``partial`` is the share of pairs whose first text is one of the world's own partial alt-texts
(true but incomplete, as the eval's ``partial`` rows are), so partial texts are what the wrong
text competes with; ``web_style_rate`` writes each text of a pair in the world's web styles
(``curate_world.webstyle``: capitals, stock framing, SEO lists, synonyms such as violet or
rhombus…) with that probability, drawn apart for the two texts, so the model meets the web's
words for colours and shapes; ``shape`` is the share of pairs whose wrong text gets a *shape*
wrong (the other pairs take whatever the world's writer changes: a colour, a shape or a count).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from curate_clip.training.families import FURNITURE_SHARE, furniture, render

DRAWS = 8
TEXTS = 5  # scene_texts' five: description, faithful, shapes only, then partial or faithful


@dataclass(frozen=True)
class PairMix:
    """What pairs are drawn: ``scenes`` (any, train), the share of pairs whose first text is a
    world ``partial`` alt-text, and the web-style rate of each text. The defaults are the pairs of
    the shipped runs P1 and P2 (same random draws)."""

    scenes: str = "any"
    partial: float = 0.0
    web_style_rate: float = 0.0
    shape: float = 0.0

    def __post_init__(self) -> None:
        if self.scenes not in ("any", "train"):
            raise ValueError(f"pair scenes must be 'any' or 'train' (never 'heldout'), got {self.scenes!r}")
        for name in ("partial", "web_style_rate", "shape"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a share in [0, 1], got {getattr(self, name)}")


def true_of(text: str, scene, changed: tuple[str, str] | None = None) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``text`` says nothing false of ``scene``, read with the world's attribute extractor
    (positions are not read). A text that counts the ``changed`` (colour, shape) kind must count
    it exactly: "two red circles" is false of three, as the world's wrong-count alt-texts are."""
    from curate_world.api import extract_attributes, score_caption

    score = score_caption(text, scene)
    exact = [score.pair_precision, score.shape_precision, score.color_precision]
    if any(value is not None and value < 1 for value in exact) or score.entity_hallucinated:
        return False
    if score.background_correct is False:
        return False
    if changed is not None:
        said = extract_attributes(text).pairs.get(changed)
        if said is not None and said != sum((o.color, o.shape) == changed for o in scene.objects):
            return False
    return True


def wrong_partner(scene, rng: np.random.Generator, scenes: str = "any"):  # type: ignore[no-untyped-def]
    """A wrong-attribute alt-text of ``scene`` (the world's own writer) and the scene it is true
    of: the mentioned objects recoloured, reshaped, or counted as the text says. None when the text
    cannot be made true in a picture (a colour that would not show on the background, no free
    position for another object), the extractor would not read it as true, or the partner is not
    in ``scenes``."""
    from curate_world.api import POSITIONS, Scene, colors_visible_on, describes, frame, in_scene_set
    from curate_world.api import render_mention, sorted_objects, wrong_mention

    name_entity = scene.entity is not None and bool(rng.random() < 0.85)
    wrong = wrong_mention(scene, rng, name_entity)
    old, new = wrong.original, wrong.mentions[wrong.index]
    matching = [i for i, o in enumerate(scene.objects) if describes(old, o)]
    objects = list(scene.objects)
    if new.color != old.color:
        if new.color not in colors_visible_on(scene.background):
            return None
        for i in matching:
            objects[i] = replace(objects[i], color=new.color)
    elif new.shape != old.shape:
        for i in matching:
            objects[i] = replace(objects[i], shape=new.shape)
    elif new.count > len(matching):
        free = [p for p in POSITIONS if p not in {o.position for o in objects}]
        if len(free) < new.count - len(matching):
            return None
        chosen = rng.choice(len(free), size=new.count - len(matching), replace=False)
        objects += [replace(objects[matching[0]], position=free[int(c)]) for c in chosen]
    else:
        drop = set(rng.choice(matching, size=len(matching) - new.count, replace=False).tolist())
        objects = [o for i, o in enumerate(objects) if i not in drop]
    partner = Scene(sorted_objects(objects), scene.background, scene.texture)
    if scenes != "any" and not in_scene_set(partner, scenes):
        return None
    text = frame([render_mention(m, rng) for m in wrong.mentions], scene, rng)
    changed = (new.color, new.shape) if new.entity is None else None
    if not true_of(text, partner, changed) or true_of(text, scene, changed):
        return None
    return partner, text, (old.color, old.shape) if old.entity is None else None


def shape_changed(scene, partner) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``partner`` is ``scene`` with shapes changed: as many objects, the same colours."""
    from collections import Counter

    def count(attribute: str, of) -> Counter:  # type: ignore[no-untyped-def]
        return Counter(getattr(o, attribute) for o in of.objects)

    return (len(partner.objects) == len(scene.objects) and count("color", partner) == count("color", scene)
            and count("shape", partner) != count("shape", scene))


def draw_scene(rng: np.random.Generator, scenes: str):  # type: ignore[no-untyped-def]
    """A scene from ``sample_scene``, redrawn until it is in ``scenes`` (``any``: the first draw)."""
    from curate_world.api import in_scene_set, sample_scene

    while True:
        scene = sample_scene(rng)
        if scenes == "any" or in_scene_set(scene, scenes):
            return scene


def make_pair(rng: np.random.Generator, mix: PairMix = PairMix()):  # type: ignore[no-untyped-def]
    """(scene, one of its true texts, partner, the scene's wrong-attribute text that is true of the
    partner). The scene's text is any kind (partial ones included; a world partial alt-text with
    probability ``mix.partial``), but not one also true of the partner: in the partner's softmax
    it would be a false negative. With ``mix.web_style_rate`` each text is then web-styled."""
    from curate_world.api import write_partial

    from curate_clip.training.data import scene_texts

    reshaped = bool(mix.shape) and bool(rng.random() < mix.shape)  # no draw at 0: the shipped runs' pairs
    found = None
    while found is None:
        scene = draw_scene(rng, mix.scenes)
        for _ in range(DRAWS):
            found = wrong_partner(scene, rng, mix.scenes)
            if found is not None and reshaped and not shape_changed(scene, found[0]):
                found = None
            if found is not None:
                break
    partner, wrong, changed = found
    texts = scene_texts(scene, TEXTS, rng)
    order = [int(k) for k in rng.permutation(TEXTS)]
    if mix.partial and rng.random() < mix.partial:
        name_entity = scene.entity is not None and bool(rng.random() < 0.85)
        texts, order = [*texts, write_partial(scene, rng, name_entity).text], [TEXTS, *order]
    text = next((texts[k] for k in order if not true_of(texts[k], partner, changed)), texts[0])
    if mix.web_style_rate:
        from curate_world.api import style_alt_text, style_weights

        weights = style_weights(None)
        text = style_alt_text(text, rng, mix.web_style_rate, weights).text
        wrong = style_alt_text(wrong, rng, mix.web_style_rate, weights).text
    return scene, text, partner, wrong


def pair_samples(pairs: int, seed: int, mix: PairMix = PairMix()) -> Iterator[tuple[str, bytes, str]]:
    """(key, jpeg, text), two per pair: a scene with any of its true texts, then its partner with
    the scene's wrong-attribute text, which is true of the partner. Page furniture (an empty
    background captioned with boilerplate or nothing) comes in pairs too, so a pair never
    straddles a batch."""
    for number in range(pairs):
        rng = np.random.default_rng([seed, number])
        if rng.random() < FURNITURE_SHARE:
            for side in "ab":
                image, text = furniture(rng)
                yield f"{number:07d}_f{side}", image, text
            continue
        scene, text, partner, wrong = make_pair(rng, mix)
        yield f"{number:07d}_a", render(scene, rng), text
        yield f"{number:07d}_b", render(partner, rng), wrong


def write_pair_shards(out_dir: Path, *, pairs: int, seed: int = 0, per_shard: int = 4000,
                      mix: PairMix = PairMix()) -> tuple[str, int]:
    """Write the shards (an even number of samples each); return (the brace pattern
    open_clip_train takes, number of samples)."""
    from curate_clip.training.data import write_sample_shards

    if per_shard % 2:
        raise ValueError(f"per_shard must be even so no pair is split across shards (got {per_shard})")
    return write_sample_shards(out_dir, pair_samples(pairs, seed, mix), "pair", per_shard)
