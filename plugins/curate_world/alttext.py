"""Alt-texts as the web writes them: mostly about the image, often incomplete, sometimes wrong,
sometimes about another image, sometimes junk. Every alt-text records which kind it is and what
exactly is missing or wrong, so filters and captioners can be scored against it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from curate_world.describe import marker_phrase
from curate_world.phrasing import article, counted, join_list, sentence_case
from curate_world.scene import Scene, SceneObject
from curate_world.vocab import COLORS, ENTITY_BY_NAME, POSITION_PHRASES, SHAPES, TEXTURES

if TYPE_CHECKING:
    import numpy as np

NOISE_TYPES: tuple[str, ...] = ("faithful", "partial", "wrong_attribute", "unrelated", "boilerplate", "empty")
# Rates of the noisy kinds; "faithful" gets the rest (0.48 with these defaults).
DEFAULT_NOISE_RATES: dict[str, float] = {
    "partial": 0.2,
    "wrong_attribute": 0.1,
    "unrelated": 0.1,
    "boilerplate": 0.08,
    "empty": 0.04,
}


@dataclass(frozen=True)
class AltText:
    text: str
    noise_type: str
    detail: str | None  # what is missing or wrong, e.g. "color: red -> blue"; None when faithful
    mentions_entity: bool  # the text names the entity that is in the image


def noise_probabilities(rates: dict[str, float] | None) -> dict[str, float]:
    """All six noise types with their probabilities; ``faithful`` takes what the others leave."""
    rates = dict(DEFAULT_NOISE_RATES if rates is None else rates)
    unknown = sorted(set(rates) - set(NOISE_TYPES) - {"faithful"})
    if unknown:
        raise ValueError(f"unknown noise type(s) {unknown}; known: {', '.join(NOISE_TYPES[1:])}")
    faithful = rates.pop("faithful", None)
    if faithful is not None and abs(faithful + sum(rates.values()) - 1.0) > 1e-6:
        raise ValueError(
            f"noise rates that include 'faithful' must sum to 1, got {sum(rates.values()) + faithful:g}"
        )
    if any(not 0.0 <= rate <= 1.0 for rate in rates.values()) or sum(rates.values()) > 1.0 + 1e-9:
        raise ValueError(f"noise rates must be in [0, 1] and sum to at most 1, got {rates}")
    noisy = {name: float(rates.get(name, 0.0)) for name in NOISE_TYPES[1:]}
    return {"faithful": max(0.0, 1.0 - sum(noisy.values())), **noisy}


@dataclass(frozen=True)
class Mention:
    """One object as an alt-text mentions it. Logos can be named, drawn in words, or both."""

    color: str
    shape: str
    count: int = 1
    size: str | None = None
    position: str | None = None
    entity: str | None = None
    named: bool = False
    visual: bool = True


def render_mention(mention: Mention, rng: np.random.Generator) -> str:
    if mention.entity is not None:
        entity = ENTITY_BY_NAME[mention.entity]
        looks = f"{mention.color} {mention.shape} with {marker_phrase(entity.marker, entity.marker_color)}"
        looks = f"{article(looks)} {looks}"
        if not mention.named:
            return looks
        name = _pick(rng, [f"the {entity.name} logo", f"{entity.name} logo", entity.name])
        return f"{name} ({looks})" if mention.visual else name
    words = [w for w in (mention.size, mention.color, mention.shape) if w]
    text = counted(mention.count, words)
    return f"{text} {POSITION_PHRASES[mention.position]}" if mention.position else text


def true_mentions(
    scene: Scene, rng: np.random.Generator, *, name_entity: bool, group: bool | None = None
) -> list[Mention]:
    """Every object of the scene, truthfully. Without sizes and positions, identical plain objects
    are grouped ("two red circles"), which is how people count."""
    detailed = rng.random() < 0.4 if group is None else not group
    with_sizes, with_positions = detailed and rng.random() < 0.6, detailed and rng.random() < 0.6
    mentions: list[Mention] = []
    for obj in scene.objects:
        if obj.entity is not None:
            visual = not name_entity or rng.random() < 0.35
            mentions.append(
                Mention(obj.color, obj.shape, entity=obj.entity, named=name_entity, visual=visual)
            )
            continue
        size = obj.size if with_sizes else None
        position = obj.position if with_positions else None
        twin = next(
            (
                i
                for i, m in enumerate(mentions)
                if not detailed and (m.color, m.shape, m.entity) == (obj.color, obj.shape, None)
            ),
            None,
        )
        if twin is not None:
            mentions[twin] = replace(mentions[twin], count=mentions[twin].count + 1)
        else:
            mentions.append(Mention(obj.color, obj.shape, size=size, position=position))
    return mentions


def frame(phrases: list[str], scene: Scene, rng: np.random.Generator) -> str:
    """Wrap a list of object phrases the way web pages do."""
    listed = join_list(phrases)
    background = f"{TEXTURES[scene.texture]} {scene.background}" if rng.random() < 0.5 else scene.background
    text = _pick(
        rng,
        [
            listed,
            listed,
            f"{listed} on a {background} background",
            f"photo of {listed}",
            f"illustration of {listed}",
            f"{listed} | stock image",
        ],
    )
    return sentence_case(text) if rng.random() < 0.5 else text


def write_faithful(scene: Scene, rng: np.random.Generator, name_entity: bool) -> AltText:
    text = frame(
        [render_mention(m, rng) for m in true_mentions(scene, rng, name_entity=name_entity)], scene, rng
    )
    return AltText(text, "faithful", None, name_entity)


def write_partial(scene: Scene, rng: np.random.Generator, name_entity: bool) -> AltText:
    """True but incomplete: some attributes only, or some objects only."""
    logo = next((obj for obj in scene.objects if obj.entity is not None), None)
    named = (
        ENTITY_BY_NAME[logo.entity].name
        if logo is not None and logo.entity is not None and name_entity
        else None
    )
    # A named logo is covered by its name; the attribute-only kinds talk about the other objects.
    others = [obj for obj in scene.objects if obj.entity is None or named is None]
    kinds = ["shapes only", "colors only", "background only"] if others else []
    if len(scene.objects) > 1:
        kinds.append("some objects only")
    if named is not None:
        kinds.append("entity only")
    kind = _pick(rng, kinds)
    if kind == "shapes only":
        shapes = list(dict.fromkeys(obj.shape for obj in others))
        text = join_list([counted(sum(obj.shape == s for obj in others), [s]) for s in shapes])
    elif kind == "colors only":
        text = join_list(list(dict.fromkeys(obj.color for obj in others))) + " shapes"
    elif kind == "background only":
        text = f"{TEXTURES[scene.texture]} {scene.background} background"
    elif kind == "entity only":
        text = _pick(rng, [named, f"{named} logo", f"visit {named}"])
    else:
        keep = int(rng.integers(1, len(scene.objects)))
        chosen = sorted(rng.choice(len(scene.objects), size=keep, replace=False).tolist())
        if named is not None and scene.objects.index(logo) not in chosen:  # type: ignore[arg-type]
            chosen = sorted([scene.objects.index(logo), *chosen[1:]])  # type: ignore[arg-type]
        subset = Scene(tuple(scene.objects[i] for i in chosen), scene.background, scene.texture)
        text = join_list(
            [render_mention(m, rng) for m in true_mentions(subset, rng, name_entity=named is not None)]
        )
        kind = f"some objects only ({len(chosen)} of {len(scene.objects)})"
    if named is not None and kind not in ("entity only",) and not kind.startswith("some objects"):
        text = f"{named}, {text}"
    text = sentence_case(text) if rng.random() < 0.5 else text
    return AltText(text, "partial", kind, named is not None)


def describes(mention: Mention, obj: SceneObject) -> bool:
    """Whether ``mention`` is of ``obj``: the same entity, colour and shape, and no position or
    size that differs (a grouped "two red circles" describes each red circle)."""
    return (
        (mention.entity, mention.color, mention.shape) == (obj.entity, obj.color, obj.shape)
        and mention.position in (None, obj.position)
        and mention.size in (None, obj.size)
    )


@dataclass(frozen=True)
class WrongMention:
    """The one mention a wrong-attribute alt-text gets wrong: ``mentions[index]`` was ``original``."""

    mentions: list[Mention]
    index: int
    original: Mention
    detail: str


def wrong_mention(scene: Scene, rng: np.random.Generator, name_entity: bool) -> WrongMention:
    """Every object of ``scene`` as mentions, one of them with a wrong color, shape or count."""
    target = int(rng.integers(len(scene.objects)))
    obj = scene.objects[target]
    # A count is only wrong if nothing else looks the same: with a logo of the same colour and
    # shape, "two green hearts and the Nuvaro Telecom logo" for one heart and a green-heart logo
    # is true of the picture.
    lookalike = any(o.entity is not None and (o.color, o.shape) == (obj.color, obj.shape) for o in scene.objects)
    kinds = ["color", "shape"] + (["count"] if obj.entity is None and not lookalike else [])
    kind = _pick(rng, kinds)
    mentions = true_mentions(scene, rng, name_entity=name_entity, group=True if kind == "count" else None)
    index = next(i for i, m in enumerate(mentions) if describes(m, obj))
    mention = mentions[index]
    if kind == "color":
        new = _pick(rng, [c for c in COLORS if c != mention.color])
        mentions[index] = replace(mention, color=new, visual=True)
        detail = f"color: {mention.color} -> {new}"
    elif kind == "shape":
        new = _pick(rng, [s for s in SHAPES if s != mention.shape])
        mentions[index] = replace(mention, shape=new, visual=True)
        detail = f"shape: {mention.shape} -> {new}"
    else:
        new_count = _pick(rng, [c for c in (1, 2, 3) if c != mention.count])
        mentions[index] = replace(mention, count=new_count)
        detail = f"count of {mention.color} {mention.shape}s: {mention.count} -> {new_count}"
    return WrongMention(mentions, index, mention, detail)


def write_wrong_attribute(scene: Scene, rng: np.random.Generator, name_entity: bool) -> AltText:
    """Mentions every object, but one color, shape or count is wrong."""
    wrong = wrong_mention(scene, rng, name_entity)
    text = frame([render_mention(m, rng) for m in wrong.mentions], scene, rng)
    return AltText(text, "wrong_attribute", wrong.detail, name_entity and scene.entity is not None)


def write_unrelated(scene: Scene, other: Scene, rng: np.random.Generator, name_entity: bool) -> AltText:
    """A faithful alt-text of another image, as when a page's images and texts get misaligned."""
    text = write_faithful(other, rng, name_entity and other.entity is not None).text
    own = scene.entity
    mentions = own is not None and own.lower() in text.lower()
    return AltText(text, "unrelated", "describes another image", mentions)


def write_boilerplate(rng: np.random.Generator) -> AltText:
    number = int(rng.integers(1, 10000))
    total = int(rng.integers(2, 30))
    text = _pick(
        rng,
        [
            f"IMG_{number:04d}.jpg",
            f"DSC{number:05d}.JPG",
            f"image{number}.png",
            "click here",
            "image",
            "photo",
            f"photo {1 + number % total} of {total}",
            "thumbnail",
            "untitled",
            "placeholder",
            "banner",
            "Download now",
            "picture",
            "see more",
            "no description available",
            f"{number}.jpg",
        ],
    )
    return AltText(text, "boilerplate", None, False)


def write_alt_text(
    scene: Scene,
    noise_type: str,
    rng: np.random.Generator,
    *,
    other: Scene | None = None,
    entity_mention_rate: float = 0.85,
) -> AltText:
    """An alt-text of ``noise_type`` for ``scene``; ``other`` is the scene an ``unrelated`` text is about.

    An image's entity is named with probability ``entity_mention_rate``: the name is the knowledge an
    image-only captioner cannot produce, so it must usually be there to be kept.
    """
    name_entity = scene.entity is not None and rng.random() < entity_mention_rate
    if noise_type == "faithful":
        return write_faithful(scene, rng, name_entity)
    if noise_type == "partial":
        return write_partial(scene, rng, name_entity)
    if noise_type == "wrong_attribute":
        return write_wrong_attribute(scene, rng, name_entity)
    if noise_type == "unrelated":
        if other is None:
            raise ValueError("an 'unrelated' alt-text needs the other scene it describes (other=...)")
        return write_unrelated(scene, other, rng, rng.random() < entity_mention_rate)
    if noise_type == "boilerplate":
        return write_boilerplate(rng)
    if noise_type == "empty":
        return AltText("", "empty", None, False)
    raise ValueError(f"unknown noise type {noise_type!r}; known: {', '.join(NOISE_TYPES)}")


def _pick(rng: np.random.Generator, options: list[str] | list[int]):  # type: ignore[no-untyped-def]
    return options[int(rng.integers(len(options)))]
