"""The closed vocabulary of the world: shapes, colors, sizes, positions, backgrounds, entities.

Everything else (sampling, rendering, captions, parsing) is driven by these tables, so adding a
color here is enough to see it everywhere. Names are single lowercase words or fixed phrases that
never contain each other's words, which keeps caption parsing unambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

Rgb = tuple[int, int, int]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "cross", "diamond", "heart")

# Saturated, far apart in RGB so that JPEG noise never moves a pixel to another color's basin.
COLORS: dict[str, Rgb] = {
    "red": (220, 30, 30),
    "orange": (255, 130, 0),
    "yellow": (245, 225, 20),
    "green": (30, 160, 50),
    "blue": (30, 80, 225),
    "purple": (135, 45, 185),
    "pink": (255, 105, 180),
    "brown": (120, 70, 30),
    "black": (15, 15, 15),
    "white": (250, 250, 250),
}

# Backgrounds are muted so objects pop out; they reuse color words (plus gray and beige) because
# alt-texts say "on a green background", not "on a sage background".
BACKGROUNDS: dict[str, Rgb] = {
    "white": (235, 235, 235),
    "gray": (128, 128, 128),
    "black": (35, 35, 35),
    "beige": (215, 195, 150),
    "green": (120, 175, 120),
    "blue": (120, 150, 205),
    "yellow": (230, 215, 125),
    "pink": (230, 175, 200),
}

# Texture name -> adjective used in descriptions ("on a striped green background").
TEXTURES: dict[str, str] = {"plain": "plain", "stripes": "striped", "dots": "dotted", "gradient": "gradient"}

# Radius as a fraction of the image side; the area ratios (about 1 : 2 : 3.6) survive JPEG and rescaling.
SIZES: dict[str, float] = {"small": 0.10, "medium": 0.14, "large": 0.19}

# Position -> (x, y) of the object's center as a fraction of the image side, on a 3x3 grid.
POSITIONS: dict[str, tuple[float, float]] = {
    "top left": (0.22, 0.22),
    "top": (0.50, 0.22),
    "top right": (0.78, 0.22),
    "left": (0.22, 0.50),
    "center": (0.50, 0.50),
    "right": (0.78, 0.50),
    "bottom left": (0.22, 0.78),
    "bottom": (0.50, 0.78),
    "bottom right": (0.78, 0.78),
}

# How a position reads in a sentence; parsing inverts this table.
POSITION_PHRASES: dict[str, str] = {
    "top left": "in the top left corner",
    "top": "at the top",
    "top right": "in the top right corner",
    "left": "on the left",
    "center": "in the center",
    "right": "on the right",
    "bottom left": "in the bottom left corner",
    "bottom": "at the bottom",
    "bottom right": "in the bottom right corner",
}

# Entity marker -> noun phrase after its color ("with yellow stripes", "with a white dot").
# No marker word is a shape word, so "a white bar" is never read as an object.
MARKERS: dict[str, str] = {"stripes": "stripes", "dot": "dot", "ring": "ring", "bar": "bar", "x": "x"}

# Minimum RGB distance between an object and its background (and texture) for it to stay visible.
MIN_CONTRAST = 110.0


@dataclass(frozen=True)
class Entity:
    """A fictional brand or landmark. Its logo is a fixed shape and color with a marker drawn inside,
    a combination no plain object has, so an image model can learn to recognise it."""

    name: str
    shape: str
    color: str
    marker: str
    marker_color: str


ENTITIES: tuple[Entity, ...] = (
    Entity("Zorblax Tower", "hexagon", "purple", "stripes", "yellow"),
    Entity("Quillfeather Bank", "diamond", "blue", "dot", "white"),
    Entity("Velmora Cola", "circle", "red", "ring", "white"),
    Entity("Krandle Motors", "square", "black", "x", "yellow"),
    Entity("Orbitron Airlines", "triangle", "orange", "bar", "white"),
    Entity("Pemberly Bridge", "cross", "brown", "dot", "yellow"),
    Entity("Glimmerstone Castle", "star", "pink", "dot", "purple"),
    Entity("Nuvaro Telecom", "heart", "green", "stripes", "white"),
    Entity("Brisklet Shoes", "circle", "yellow", "x", "black"),
    Entity("Halvendor Lighthouse", "triangle", "white", "stripes", "red"),
    Entity("Tessaly Fountain", "hexagon", "blue", "ring", "white"),
    Entity("Murkwater Brewery", "square", "brown", "bar", "orange"),
    Entity("Cindral Pharmacy", "cross", "green", "ring", "white"),
    Entity("Yontab Stadium", "diamond", "orange", "stripes", "black"),
    Entity("Fennimore Gate", "square", "purple", "dot", "yellow"),
    Entity("Drossel Coffee", "circle", "brown", "dot", "white"),
    Entity("Lumaquin Studios", "star", "yellow", "ring", "red"),
    Entity("Sprocketta Bikes", "hexagon", "red", "x", "white"),
    Entity("Wexhollow Abbey", "heart", "black", "bar", "white"),
    Entity("Jastrel Dairy", "triangle", "blue", "dot", "yellow"),
)

ENTITY_BY_NAME: dict[str, Entity] = {entity.name: entity for entity in ENTITIES}

# Variants that free-form captions and web alt-texts use; the attribute extractor maps them to
# canonical names (``attributes.extract_attributes``), and the ``synonym`` web style writes them
# (``webstyle``). None is a word of the vocabulary above, a marker, a size or an entity name.
# "plus" is read as a cross also in "plus sign(s)".
SHAPE_SYNONYMS: dict[str, str] = {
    "disc": "circle",
    "disk": "circle",
    "box": "square",
    "wedge": "triangle",
    "pentagram": "star",
    "hex": "hexagon",
    "plus": "cross",
    "rhombus": "diamond",
    "lozenge": "diamond",
}
COLOR_SYNONYMS: dict[str, str] = {
    "crimson": "red",
    "scarlet": "red",
    "amber": "orange",
    "tangerine": "orange",
    "golden": "yellow",
    "emerald": "green",
    "lime": "green",
    "navy": "blue",
    "azure": "blue",
    "cobalt": "blue",
    "violet": "purple",
    "plum": "purple",
    "rose": "pink",
    "fuchsia": "pink",
    "chocolate": "brown",
    "chestnut": "brown",
    "ebony": "black",
    "ivory": "white",
    "grey": "gray",
    "cream": "beige",
}


def color_distance(a: Rgb, b: Rgb) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5


def texture_rgb(background: str) -> Rgb:
    """The second color of a textured background: the base shifted toward mid-gray, so the texture
    is visible but the background still reads as its named color."""

    def shift(channel: int) -> int:
        # Mid-gray channels have nowhere to go toward gray, so they get lighter instead.
        return channel + 45 if abs(channel - 128) <= 40 else round(channel + (128 - channel) * 0.35)

    red, green, blue = BACKGROUNDS[background]
    return shift(red), shift(green), shift(blue)


@cache  # called for every sampled scene
def colors_visible_on(background: str) -> tuple[str, ...]:
    """Object colors that stand out from the background and its texture color. A color never goes
    on the background of the same name: "a green circle on a green background" is legal but makes
    every caption metric ambiguous."""
    base, second = BACKGROUNDS[background], texture_rgb(background)
    return tuple(
        name
        for name, rgb in COLORS.items()
        if name != background
        and color_distance(rgb, base) >= MIN_CONTRAST
        and color_distance(rgb, second) >= MIN_CONTRAST
    )


def _check_tables() -> None:
    """Fail at import, not in the middle of a 5000-row run, if someone edits a table inconsistently."""
    signatures = {(e.shape, e.color) for e in ENTITIES}
    assert len(signatures) == len(ENTITIES), "two entities share a shape+color signature"
    for entity in ENTITIES:
        assert entity.shape in SHAPES and entity.color in COLORS and entity.marker in MARKERS, entity
        assert entity.marker_color in COLORS and entity.marker_color != entity.color, entity
        hosts = [b for b in BACKGROUNDS if entity.color in colors_visible_on(b)]
        assert len(hosts) >= 3, f"{entity.name}'s logo is visible on too few backgrounds: {hosts}"
    known = {*SHAPES, *COLORS, *BACKGROUNDS, *SIZES, *MARKERS, *TEXTURES.values()}
    known |= {word.lower() for entity in ENTITIES for word in entity.name.split()}
    for synonym, canonical in {**SHAPE_SYNONYMS, **COLOR_SYNONYMS}.items():
        assert synonym not in known and canonical in {*SHAPES, *COLORS, *BACKGROUNDS}, synonym
    for background in BACKGROUNDS:
        assert len(colors_visible_on(background)) >= 4, f"too few object colors visible on {background}"


_check_tables()


def edit_vocabulary() -> dict[str, Any]:
    """The world's words for ``clip_score``'s ``edits: world``: object and background colours,
    shapes (count nouns, "two stars" <-> "a star"), with the web's synonyms of each and the forms
    its second language writes (Spanish and German, read as the English word); counts 1-3, as
    the world's wrong-count alt-texts have them; a background's colour is not edited. Plain data
    (``curate_clip.api.EditVocabulary``)."""
    from curate_world.translate import edit_forms

    translated = edit_forms()
    return {
        "classes": {
            "color": {"words": sorted({*COLORS, *BACKGROUNDS}),
                      "synonyms": {**COLOR_SYNONYMS, **translated["colors"]}},
            "shape": {"words": list(SHAPES), "synonyms": {**SHAPE_SYNONYMS, **translated["shapes"]},
                      "nouns": True, "plurals": translated["plurals"]},
        },
        "max_count": 3,
        "numbers": translated["numbers"],
        "typos": True,
        "glossary": translated["glossary"],  # the words around them, so the CLIP reads the text in English
        "fragments": True,  # the web mix's truncation cuts a text mid-word
        # The background's colour is read, never edited: the world CLIP binds a colour word to the
        # objects, so a true "on a plain white background" lost to its edit "on a plain red
        # background" under a red object (tuning worlds 6413 / 6414: AUC +0.002 each). Spanish
        # writes the colour after the noun ("sobre fondo blanco"), German before ("weißem Hintergrund"),
        # a word-for-word translation before "fondo" too ("Plain negro fondo"); a colour after a
        # texture word is the background's as well, the noun cut off or left out ("Striped whit…"):
        # the world's objects have no texture (tuning worlds 6413 / 6415: +0.0015 / +0.0021).
        "unedited_before": ["background", "backgrounds", "hintergrund", "fondo"],
        "unedited_after": ["fondo", *TEXTURES.values()],
    }


def concept_names() -> tuple[str, ...]:
    """Every word or name an alt-text can use for what an image shows, each once, in a fixed
    order: shapes, colors (object and background), sizes, texture adjectives, entity names.
    A metadata list for concept matching (``curate_metadata``'s default entries)."""
    names = [*SHAPES, *COLORS, *(b for b in BACKGROUNDS if b not in COLORS), *SIZES]
    names += [adjective for adjective in TEXTURES.values() if adjective not in names]
    names += [entity.name for entity in ENTITIES]
    return tuple(names)
