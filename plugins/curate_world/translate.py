"""A second language for some alt-texts: a small fixed dictionary that puts the world's object
phrases ("two small red circles") into Spanish or German with articles, gender and plural right,
and translates a few frame words. Everything else (entity names, positions, boilerplate) stays as
it was, the way machine-translated or half-localised pages read.

The attribute extractor reads English only; a translated alt-text is recorded as such
(``style_detail["language"]``), not scored as if it were English.
"""

from __future__ import annotations

import re

from curate_world.phrasing import NUMBER_WORDS
from curate_world.vocab import BACKGROUNDS, COLORS, SHAPES, SIZES, TEXTURES

LANGUAGES: tuple[str, ...] = ("es", "de")

# shape -> (gender, singular, plural)
_SHAPES: dict[str, dict[str, tuple[str, str, str]]] = {
    "es": {
        "circle": ("m", "círculo", "círculos"),
        "square": ("m", "cuadrado", "cuadrados"),
        "triangle": ("m", "triángulo", "triángulos"),
        "star": ("f", "estrella", "estrellas"),
        "hexagon": ("m", "hexágono", "hexágonos"),
        "cross": ("f", "cruz", "cruces"),
        "diamond": ("m", "rombo", "rombos"),
        "heart": ("m", "corazón", "corazones"),
    },
    "de": {
        "circle": ("m", "Kreis", "Kreise"),
        "square": ("n", "Quadrat", "Quadrate"),
        "triangle": ("n", "Dreieck", "Dreiecke"),
        "star": ("m", "Stern", "Sterne"),
        "hexagon": ("n", "Sechseck", "Sechsecke"),
        "cross": ("n", "Kreuz", "Kreuze"),
        "diamond": ("f", "Raute", "Rauten"),
        "heart": ("n", "Herz", "Herzen"),
    },
}
# Spanish adjectives: (masculine singular, feminine singular, masculine plural, feminine plural).
_ES_ADJECTIVES: dict[str, tuple[str, str, str, str]] = {
    "red": ("rojo", "roja", "rojos", "rojas"),
    "orange": ("naranja", "naranja", "naranja", "naranja"),
    "yellow": ("amarillo", "amarilla", "amarillos", "amarillas"),
    "green": ("verde", "verde", "verdes", "verdes"),
    "blue": ("azul", "azul", "azules", "azules"),
    "purple": ("morado", "morada", "morados", "moradas"),
    "pink": ("rosa", "rosa", "rosa", "rosa"),
    "brown": ("marrón", "marrón", "marrones", "marrones"),
    "black": ("negro", "negra", "negros", "negras"),
    "white": ("blanco", "blanca", "blancos", "blancas"),
    "small": ("pequeño", "pequeña", "pequeños", "pequeñas"),
    "medium": ("mediano", "mediana", "medianos", "medianas"),
    "large": ("grande", "grande", "grandes", "grandes"),
}
# German adjective stems; None ending: the adjective does not inflect (lila, rosa).
_DE_ADJECTIVES: dict[str, tuple[str, bool]] = {
    "red": ("rot", True),
    "orange": ("orangefarben", True),
    "yellow": ("gelb", True),
    "green": ("grün", True),
    "blue": ("blau", True),
    "purple": ("lila", False),
    "pink": ("rosa", False),
    "brown": ("braun", True),
    "black": ("schwarz", True),
    "white": ("weiß", True),
    "small": ("klein", True),
    "medium": ("mittelgroß", True),
    "large": ("groß", True),
}
_NUMBERS = {
    "es": {2: "dos", 3: "tres", 4: "cuatro", 5: "cinco"},
    "de": {2: "zwei", 3: "drei", 4: "vier", 5: "fünf"},
}
# Background colors and frame words, word for word.
_WORDS = {
    "es": {"gray": "gris", "beige": "beige", "background": "fondo", "and": "y", "with": "con",
           "logo": "logotipo", "photo": "foto", "of": "de", "illustration": "ilustración"},
    "de": {"gray": "grau", "beige": "beige", "background": "Hintergrund", "and": "und", "with": "mit",
           "logo": "Logo", "photo": "Foto", "of": "von", "illustration": "Illustration"},
}
# "on a striped green background": texture adjective -> (Spanish after the color, German dative).
_TEXTURES = {
    "plain": ("liso", "einfarbigem"),
    "striped": ("a rayas", "gestreiftem"),
    "dotted": ("de lunares", "gepunktetem"),
    "gradient": ("degradado", "verlaufendem"),
}
_COUNTS = {"a": 1, "an": 1, **{word: n for n, word in NUMBER_WORDS.items()}}


def _alternatives(words: object) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))  # type: ignore[arg-type]


_SHAPE_FORMS = {**{s: (s, False) for s in SHAPES}, **{s + ("es" if s.endswith("s") else "s"): (s, True) for s in SHAPES}}
_PHRASE = re.compile(
    rf"\b(?:(?P<count>{_alternatives(_COUNTS)})\s+)?(?:(?P<size>{_alternatives(SIZES)})\s+)?"
    rf"(?P<color>{_alternatives(COLORS)})\s+(?P<shape>{_alternatives(_SHAPE_FORMS)})\b",
    re.IGNORECASE,
)
_BACKGROUND = re.compile(
    rf"\bon an? (?:(?P<texture>{_alternatives(TEXTURES.values())}) )?(?P<color>{_alternatives(BACKGROUNDS)}) background\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"\b[A-Za-z]+\b")


def _background(language: str, color: str, texture: str | None) -> str:
    if language == "es":
        name = _ES_ADJECTIVES[color][0] if color in _ES_ADJECTIVES else _WORDS["es"][color]
        return " ".join(["sobre fondo", name, *([_TEXTURES[texture][0]] if texture else [])])
    stem, inflects = _DE_ADJECTIVES[color] if color in _DE_ADJECTIVES else (_WORDS["de"][color], color != "beige")
    words = [_TEXTURES[texture][1]] if texture else []
    return " ".join(["auf", *words, stem + ("em" if inflects else ""), "Hintergrund"])


def _spanish(count: int | None, size: str | None, color: str, shape: str, plural: bool) -> str:
    gender, singular, plural_noun = _SHAPES["es"][shape]
    slot = (2 if plural else 0) + (1 if gender == "f" else 0)
    words = [plural_noun if plural else singular, _ES_ADJECTIVES[color][slot]]
    if size is not None:
        words.append(_ES_ADJECTIVES[size][slot])
    if count == 1:
        words.insert(0, "una" if gender == "f" else "un")
    elif count is not None:
        words.insert(0, _NUMBERS["es"][count])
    return " ".join(words)


def _german_adjective(word: str, gender: str, plural: bool, with_article: bool) -> str:
    stem, inflects = _DE_ADJECTIVES[word]
    if not inflects:
        return stem
    if plural or not with_article:
        return stem + ("e" if plural else {"m": "er", "n": "es", "f": "e"}[gender])
    return stem + {"m": "er", "n": "es", "f": "e"}[gender]


def _german(count: int | None, size: str | None, color: str, shape: str, plural: bool) -> str:
    gender, singular, plural_noun = _SHAPES["de"][shape]
    with_article = count == 1
    adjectives = [
        _german_adjective(word, gender, plural, with_article) for word in (size, color) if word is not None
    ]
    words = [*adjectives, plural_noun if plural else singular]
    if count == 1:
        words.insert(0, "eine" if gender == "f" else "ein")
    elif count is not None:
        words.insert(0, _NUMBERS["de"][count])
    return " ".join(words)


def translate(text: str, language: str) -> str:
    """``text`` with its object phrases, remaining color and shape words and frame words in
    ``language`` ("es" or "de")."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; known: {', '.join(LANGUAGES)}")
    write = _spanish if language == "es" else _german

    def phrase(match: re.Match[str]) -> str:
        shape, plural = _SHAPE_FORMS[match.group("shape").lower()]
        count_word = match.group("count")
        count = _COUNTS[count_word.lower()] if count_word else None
        size = match.group("size").lower() if match.group("size") else None
        translated = write(count, size, match.group("color").lower(), shape, plural)
        return translated[:1].upper() + translated[1:] if match.group(0)[:1].isupper() else translated

    text = _PHRASE.sub(phrase, text)
    text = _BACKGROUND.sub(
        lambda m: _background(
            language, m.group("color").lower(), m.group("texture").lower() if m.group("texture") else None
        ),
        text,
    )

    def word(match: re.Match[str]) -> str:
        original = match.group(0)
        lower = original.lower()
        if lower in _SHAPE_FORMS:
            shape, plural = _SHAPE_FORMS[lower]
            translated = _SHAPES[language][shape][2 if plural else 1]
        elif lower in _ES_ADJECTIVES and lower in COLORS:
            translated = _ES_ADJECTIVES[lower][0] if language == "es" else _DE_ADJECTIVES[lower][0]
        elif lower in _WORDS[language]:
            translated = _WORDS[language][lower]
        else:
            return original
        return translated[:1].upper() + translated[1:] if original[:1].isupper() else translated

    return _WORD.sub(word, text)


def glossary() -> dict[str, str]:
    """The Spanish and German words a translated alt-text writes around its colours, shapes and
    counts, each -> the English word: "und" -> "and", "kleiner" -> "small", "liso" -> "plain"
    (for the ``world`` edit vocabulary's ``glossary``). Background words are left out (the
    vocabulary keeps the colour next to them unedited), and so is Spanish "de" ("de lunares")."""
    words: dict[str, str] = {"auf": "on", "sobre": "on", "en": "in"}
    for language in LANGUAGES:
        for english, word in _WORDS[language].items():
            if english in ("and", "with", "logo", "photo", "of", "illustration") and word.lower() not in (english, "de"):
                words[word.lower()] = english
    for size in SIZES:
        words.update(dict.fromkeys(_ES_ADJECTIVES[size], size))
        stem, _ = _DE_ADJECTIVES[size]
        words.update({stem + ending: size for ending in ("", "e", "er", "es", "en", "em")})
    for texture, (spanish, german) in _TEXTURES.items():
        words[german] = texture
        if " " not in spanish:
            words[spanish] = texture
    return dict(sorted(words.items()))


def edit_forms() -> dict[str, dict[str, str]]:
    """The Spanish and German forms of the world's colours, shapes and counts, for the ``world``
    edit vocabulary (``curate_world.vocab.edit_vocabulary``): ``colors`` and ``shapes`` map each
    form (lower case, every gender, number and German ending the translation writes) to its English
    word, ``plurals`` a shape form to its plural, ``numbers`` a count word ("dos", "eine") to its
    count. A form written the same as an English word of the world, or meaning two words, is left out."""
    colors: dict[str, set[str]] = {}
    for color in sorted({*COLORS, *BACKGROUNDS}):
        forms = set(_ES_ADJECTIVES[color]) if color in _ES_ADJECTIVES else {_WORDS["es"][color]}
        stem, inflects = _DE_ADJECTIVES.get(color) or (_WORDS["de"][color], color != "beige")
        forms |= {stem + ending for ending in (("", "e", "er", "es", "en", "em") if inflects else ("",))}
        for form in forms:
            colors.setdefault(form.lower(), set()).add(color)
    english = {*COLORS, *BACKGROUNDS, *SHAPES}
    shapes: dict[str, str] = {}
    plurals: dict[str, str] = {}
    for language in LANGUAGES:
        for shape, (_, singular, plural) in _SHAPES[language].items():
            shapes[singular.lower()] = shape
            plurals[singular.lower()] = plural.lower()
    numbers = {"un": 1, "una": 1, "ein": 1, "eine": 1,
               **{word: n for language in LANGUAGES for n, word in _NUMBERS[language].items()}}
    return {
        "glossary": glossary(),
        "colors": {form: next(iter(words)) for form, words in sorted(colors.items())
                   if len(words) == 1 and form not in english},
        "shapes": dict(sorted(shapes.items())),
        "plurals": dict(sorted(plurals.items())),
        "numbers": dict(sorted(numbers.items())),
    }
