"""Find what any caption says about shapes, colors, counts, backgrounds and entities, and score it
against a scene. Works on alt-texts, canonical descriptions and model captions alike.

The extractor reads the caption in three passes, most specific first, so no word is counted twice:
entity names, then background phrases ("on a striped green background") and logo markers ("with a
white dot"), then object phrases ("two small red circles"), where a shape word takes the run of
count/size/color words right before it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass

from curate_world.phrasing import NUMBER_WORDS, plural
from curate_world.scene import Scene
from curate_world.vocab import (
    BACKGROUNDS,
    COLOR_SYNONYMS,
    COLORS,
    ENTITY_BY_NAME,
    MARKERS,
    SHAPE_SYNONYMS,
    SHAPES,
    SIZES,
    TEXTURES,
)

COLOR_WORDS: dict[str, str] = {**{c: c for c in (*COLORS, *BACKGROUNDS)}, **COLOR_SYNONYMS}
SIZE_WORDS: dict[str, str] = {
    **{s: s for s in SIZES},
    "big": "large",
    "huge": "large",
    "tiny": "small",
    "little": "small",
}
COUNT_WORDS: dict[str, int] = {
    "a": 1,
    "an": 1,
    "single": 1,
    **{w: n for n, w in NUMBER_WORDS.items()},
    "six": 6,
}
# (noun form) -> (canonical shape, is plural)
SHAPE_WORDS: dict[str, tuple[str, bool]] = {}
for _word, _shape in {**{s: s for s in SHAPES}, **SHAPE_SYNONYMS}.items():
    SHAPE_WORDS[_word] = (_shape, False)
    SHAPE_WORDS[plural(_word)] = (_shape, True)
# Words that may sit between a count and a shape without ending the object phrase.
FILLER_WORDS = frozenset(
    {"bright", "dark", "light", "solid", "filled", "colored", "coloured", "little", "big"}
)
TEXTURE_WORDS: dict[str, str] = {
    **{adjective: texture for texture, adjective in TEXTURES.items()},
    "stripes": "stripes",
    "stripy": "stripes",
    "dots": "dots",
    "spotted": "dots",
    "polka-dot": "dots",
}


def _alternatives(words: object) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))  # type: ignore[arg-type]


_ENTITY = re.compile(
    r"\b(" + "|".join(r"\s+".join(map(re.escape, name.lower().split())) for name in ENTITY_BY_NAME) + r")\b",
    re.IGNORECASE,
)
_ENTITY_BY_LOWER = {" ".join(name.lower().split()): name for name in ENTITY_BY_NAME}
_BACKGROUND = re.compile(
    rf"\b(?:(?P<texture>{_alternatives(TEXTURE_WORDS)})\s+)?(?:(?P<color>{_alternatives(COLOR_WORDS)})\s+)?"
    rf"(?:(?P<texture_after>{_alternatives(TEXTURE_WORDS)})\s+)?(?:patterned\s+|pattern\s+)?background\b"
)
_MARKER_NOUNS = {
    **{noun: marker for marker, noun in MARKERS.items()},
    "stripe": "stripes",
    "dots": "dot",
    "rings": "ring",
    "bars": "bar",
}
_MARKER = re.compile(
    rf"\bwith\s+(?:an?\s+)?(?P<color>{_alternatives(COLOR_WORDS)})\s+(?P<marker>{_alternatives(_MARKER_NOUNS)})\b"
)
_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)*|\d+|[^\sa-z\d]")


@dataclass(frozen=True)
class ObjectMention:
    shape: str
    color: str | None
    size: str | None
    count: int  # as stated; a plural without a number counts as 2 (the least it can mean)


@dataclass(frozen=True)
class Mentions:
    objects: tuple[ObjectMention, ...]
    colors: frozenset[str]  # object colors, attached to a shape ("red circle") or not ("red shapes")
    entities: tuple[str, ...]
    markers: tuple[tuple[str, str], ...]  # (color, marker) of logo markers, e.g. ("white", "dot")
    background: str | None
    texture: str | None

    @property
    def shapes(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for m in self.objects:
            counts[m.shape] += m.count
        return counts

    @property
    def pairs(self) -> Counter[tuple[str, str]]:
        counts: Counter[tuple[str, str]] = Counter()
        for m in self.objects:
            if m.color is not None:
                counts[(m.color, m.shape)] += m.count
        return counts

    @property
    def object_count(self) -> int:
        return sum(m.count for m in self.objects)


def extract_attributes(text: str) -> Mentions:
    """Everything ``text`` says about an image in the world's vocabulary. Case-insensitive; knows
    plurals, number words and digits, the synonyms of ``vocab.SHAPE_SYNONYMS`` and
    ``vocab.COLOR_SYNONYMS`` (grey, violet, crimson, disc, rhombus, plus sign…), big, tiny. Web
    styling other than synonyms (file names, HTML, emoji) is undone by
    ``curate_world.webstyle.normalize_web_text`` first."""
    entities = tuple(_ENTITY_BY_LOWER[" ".join(m.group(1).lower().split())] for m in _ENTITY.finditer(text))
    lowered = _ENTITY.sub(" , ", text).lower()
    background = texture = None
    for match in _BACKGROUND.finditer(lowered):
        background = COLOR_WORDS[match.group("color")] if match.group("color") else background
        tex = match.group("texture") or match.group("texture_after")
        texture = TEXTURE_WORDS[tex] if tex else texture
    lowered = _BACKGROUND.sub(" , ", lowered)
    markers = tuple(
        (COLOR_WORDS[m.group("color")], _MARKER_NOUNS[m.group("marker")]) for m in _MARKER.finditer(lowered)
    )
    lowered = _MARKER.sub(" , ", lowered)

    tokens = _TOKEN.findall(lowered)
    objects, colors, attached = [], set(), set()
    for index, token in enumerate(tokens):
        if token in COLOR_WORDS:
            colors.add(COLOR_WORDS[token])
        if token not in SHAPE_WORDS:
            continue
        shape, is_plural = SHAPE_WORDS[token]
        if token == "plus" and index + 1 < len(tokens) and tokens[index + 1] == "signs":
            is_plural = True  # "two plus signs"
        color = size = count = None
        back = index - 1
        while back >= 0 and (
            tokens[back] in COLOR_WORDS or tokens[back] in SIZE_WORDS or tokens[back] in FILLER_WORDS
        ):
            word = tokens[back]
            if word in COLOR_WORDS and color is None:
                color = COLOR_WORDS[word]
                attached.add(back)
            elif word in SIZE_WORDS and size is None:
                size = SIZE_WORDS[word]
            back -= 1
        if back >= 0 and (tokens[back] in COUNT_WORDS or tokens[back].isdigit()):
            count = COUNT_WORDS.get(tokens[back]) or int(tokens[back])
        objects.append(ObjectMention(shape, color, size, count or (2 if is_plural else 1)))
    return Mentions(tuple(objects), frozenset(colors), entities, markers, background, texture)


@dataclass(frozen=True)
class CaptionScore:
    """How well a caption matches a scene. Precisions are None when the caption mentions nothing of
    that kind. Naming an entity counts as mentioning its logo's shape and color."""

    pair_precision: float | None  # of the (color, shape) pairs mentioned, the share in the image
    pair_recall: float  # of the image's objects, the share whose color and shape are mentioned
    shape_precision: float | None
    shape_recall: float
    color_precision: float | None
    color_recall: float
    count_error: int  # objects mentioned minus objects in the image
    entity_retained: bool | None  # the image's entity is named; None when the image has none
    entity_hallucinated: bool  # an entity that is not in the image is named
    background_correct: bool | None  # None when no background color is mentioned

    def as_dict(self) -> dict[str, float | int | bool | None]:
        return asdict(self)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def score_caption(caption: str, scene: Scene) -> CaptionScore:
    mentions = extract_attributes(caption)
    true_pairs = Counter((obj.color, obj.shape) for obj in scene.objects)
    true_shapes = Counter(obj.shape for obj in scene.objects)
    true_colors = {obj.color for obj in scene.objects}
    pairs, shapes, colors = mentions.pairs, mentions.shapes, set(mentions.colors)
    for obj in scene.objects:
        if (
            obj.entity is not None
            and obj.entity in mentions.entities
            and pairs[(obj.color, obj.shape)] < true_pairs[(obj.color, obj.shape)]
        ):
            pairs[(obj.color, obj.shape)] += 1
            shapes[obj.shape] += 1
            colors.add(obj.color)
    pair_hits = sum((pairs & true_pairs).values())
    shape_hits = sum((shapes & true_shapes).values())
    color_hits = len(colors & true_colors)
    entity = scene.entity
    return CaptionScore(
        pair_precision=_ratio(pair_hits, sum(pairs.values())),
        pair_recall=pair_hits / len(scene.objects),
        shape_precision=_ratio(shape_hits, sum(shapes.values())),
        shape_recall=shape_hits / len(scene.objects),
        color_precision=_ratio(color_hits, len(colors)),
        color_recall=color_hits / len(true_colors),
        count_error=sum(shapes.values()) - len(scene.objects),
        entity_retained=None if entity is None else entity in mentions.entities,
        entity_hallucinated=any(name != entity for name in mentions.entities),
        background_correct=None if mentions.background is None else mentions.background == scene.background,
    )
