"""Web styling of alt-texts: how the text is written, on top of what it says.

``noise_type`` (alttext.py) decides what an alt-text says about its image. A style changes how it
is written: capitals, stock-site framing and ids, file names, SEO keyword lists, HTML remnants,
emoji, mid-word truncation, synonyms, misspellings, a second language, and several disagreeing
alt-texts for one image. Each row records the styles applied and what they did
(``styles``, ``style_detail``), and the unstyled text (``alt_text_plain``).

Most styles keep what :func:`curate_world.attributes.score_caption` reads from the text once
:func:`normalize_web_text` has undone the markup (synonyms need no undoing: the extractor knows
them). The ``LOSSY`` ones may not: a misspelt or translated word is not read, a truncated text
says less; their ``style_detail`` entry says exactly what changed.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from curate_world.phrasing import article, plural
from curate_world.translate import LANGUAGES, translate
from curate_world.vocab import BACKGROUNDS, COLOR_SYNONYMS, COLORS, SHAPE_SYNONYMS, SHAPES, SIZES

if TYPE_CHECKING:
    import numpy as np

# In the order they are applied; at most one style of each group per alt-text.
STYLE_GROUPS: dict[str, str] = {
    "synonym": "words",
    "misspelling": "words",
    "language": "words",
    "stock_framing": "framing",
    "file_name": "framing",
    "seo_keywords": "framing",
    "all_caps": "case",
    "title_case": "case",
    "html": "markup",
    "emoji": "markup",
    "truncation": "cut",
    "multi_alt": "alts",
}
STYLES: tuple[str, ...] = tuple(STYLE_GROUPS)
LOSSY: frozenset[str] = frozenset({"misspelling", "language", "truncation"})
# "The web mix": every style, equally likely, on half the rows. Defaults flip to it once the
# world's models are retrained on it.
WEB_MIX_RATE = 0.5
# How many styles a styled alt-text gets: 1, 2 or 3.
_STYLE_COUNT_P = (0.6, 0.3, 0.1)

_CANONICAL_FORMS: dict[str, str] = {
    **{w: w for w in (*SHAPES, *COLORS, *BACKGROUNDS)},
    **{plural(s): s for s in SHAPES},
}
_VOCAB_WORD = re.compile(
    r"\b(" + "|".join(sorted(map(re.escape, _CANONICAL_FORMS), key=len, reverse=True)) + r")\b", re.IGNORECASE
)
_SYNONYMS_OF: dict[str, list[str]] = {}
for _synonym, _canonical in {**SHAPE_SYNONYMS, **COLOR_SYNONYMS}.items():
    _SYNONYMS_OF.setdefault(_canonical, []).append(_synonym)
_KNOWN_WORDS = {*_CANONICAL_FORMS, *SIZES, *SHAPE_SYNONYMS, *COLOR_SYNONYMS, *map(plural, SHAPE_SYNONYMS)}

_STOCK_TEMPLATES = (
    "Stock Photo - {t}",
    "{t} - {id}",
    "{t} stock photo {id}",
    "{t} - Royalty Free Stock Image",
    "Stock Vector - {t}. ID {id}",
    "{t} | Stock Illustration ID {id}",
    "Vector illustration of {t} - {id}",
)
_SEO_WORDS = (
    "geometric", "shapes", "vector", "clipart", "abstract", "icon", "design", "free", "download",
    "hd", "png", "transparent", "isolated", "flat", "modern", "simple", "graphic", "art", "symbol",
    "template", "best", "cheap", "2024",
)
_EMOJI = ("📷", "✨", "🔥", "👉", "⭐", "❤️", "🎨", "💯", "😍", "👍", "🟥", "🔵")
_FILE_STOPWORDS = {"a", "an", "the", "and"}


@dataclass(frozen=True)
class Styled:
    text: str
    styles: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)


def style_weights(weights: dict[str, float] | None) -> dict[str, float]:
    """Every style with its relative weight; all 1 when unset, 0 for styles a dict leaves out."""
    if weights is None:
        return dict.fromkeys(STYLES, 1.0)
    unknown = sorted(set(weights) - set(STYLES))
    if unknown:
        raise ValueError(f"unknown web style(s) {unknown}; known: {', '.join(STYLES)}")
    if any(not 0.0 <= w for w in weights.values()) or not any(w > 0 for w in weights.values()):
        raise ValueError(f"web style weights must be >= 0 with at least one > 0, got {weights}")
    return {name: float(weights.get(name, 0.0)) for name in STYLES}


def applicable(style: str, text: str) -> bool:
    if style in ("html", "multi_alt"):
        return True
    if style == "synonym":
        return any(_CANONICAL_FORMS[m.group(1).lower()] in _SYNONYMS_OF for m in _VOCAB_WORD.finditer(text))
    if style in ("misspelling", "language"):
        return _VOCAB_WORD.search(text) is not None
    if style == "truncation":
        return re.search(r"[^\W\d_]{3,}", text) is not None
    return bool(text.strip())


def draw_styles(text: str, rng: np.random.Generator, rate: float, weights: dict[str, float]) -> tuple[str, ...]:
    """The styles one alt-text gets: none with probability ``1 - rate``, else 1–3 of those that
    apply to ``text``, by weight, at most one per group, in application order."""
    if rng.random() >= rate:
        return ()
    wanted = 1 + int(rng.choice(len(_STYLE_COUNT_P), p=_STYLE_COUNT_P))
    chosen: list[str] = []
    for _ in range(wanted):
        groups = {STYLE_GROUPS[s] for s in chosen}
        candidates = [
            s for s in STYLES if weights[s] > 0 and STYLE_GROUPS[s] not in groups and applicable(s, text)
        ]
        if not candidates:
            break
        p = [weights[s] for s in candidates]
        chosen.append(candidates[int(rng.choice(len(candidates), p=[w / sum(p) for w in p]))])
    return tuple(sorted(chosen, key=STYLES.index))


def apply_styles(text: str, styles: tuple[str, ...], rng: np.random.Generator) -> Styled:
    """``text`` written in ``styles`` (application order); ``multi_alt`` leaves the text alone
    (the generator writes the other alt-texts)."""
    detail: dict[str, Any] = {}
    for style in styles:
        if style != "multi_alt":
            text, detail[style] = _WRITERS[style](text, rng)
    return Styled(text, styles, detail)


def style_alt_text(text: str, rng: np.random.Generator, rate: float, weights: dict[str, float]) -> Styled:
    return apply_styles(text, draw_styles(text, rng, rate, weights), rng)


def normalize_web_text(text: str) -> str:
    """Undo markup that hides words from the attribute extractor: HTML tags and entities, emoji,
    file names ("red-circle-blue-square.png" -> "red circle blue square"). Case, framing and
    keywords need no undoing; synonyms are understood as they are."""
    text = html.unescape(re.sub(r"<[^>]*>", " ", text)).replace("\xa0", " ")
    text = "".join(
        ch for ch in text if unicodedata.category(ch) not in ("So", "Sk", "Cf") and ch not in "\ufe0e\ufe0f"
    )
    text = re.sub(
        r"\b([\w-]+)\.(?:jpe?g|png|gif|webp)\b",
        lambda m: m.group(1).replace("-", " ").replace("_", " "),
        text,
        flags=re.IGNORECASE,
    )
    return " ".join(text.split())


# -- the styles --------------------------------------------------------------------------------
def _pick(rng: np.random.Generator, options):  # type: ignore[no-untyped-def]
    return options[int(rng.integers(len(options)))]


def _like(original: str, word: str) -> str:
    """``word`` in the capitalisation of ``original``."""
    if original.isupper() and len(original) > 1:
        return word.upper()
    return word[:1].upper() + word[1:] if original[:1].isupper() else word


def _synonym(text: str, rng: np.random.Generator) -> tuple[str, dict[str, str]]:
    found = list(dict.fromkeys(_CANONICAL_FORMS[m.group(1).lower()] for m in _VOCAB_WORD.finditer(text)))
    with_synonyms = [w for w in found if w in _SYNONYMS_OF]
    keep = [w for w in with_synonyms if rng.random() < 0.5] or [_pick(rng, with_synonyms)]
    chosen = {w: _pick(rng, _SYNONYMS_OF[w]) for w in keep}

    def swap(match: re.Match[str]) -> str:
        form = match.group(1)
        canonical = _CANONICAL_FORMS[form.lower()]
        if canonical not in chosen:
            return form
        synonym = chosen[canonical]
        is_plural = form.lower() != canonical
        word = (synonym + " signs" if is_plural else synonym + " sign") if synonym == "plus" else (
            plural(synonym) if is_plural else synonym
        )
        return _like(form, word)

    text = _VOCAB_WORD.sub(swap, text)
    fresh = "|".join(re.escape(s) for s in chosen.values())
    text = re.sub(  # "an orange star" -> "a tangerine star", "a red disc" stays
        rf"\b([Aa]n?) (({fresh})\w*)\b",
        lambda m: _like(m.group(1), article(m.group(2).lower())) + " " + m.group(2),
        text,
        flags=re.IGNORECASE,
    )
    return text, chosen


def _misspell_word(word: str, rng: np.random.Generator) -> str:
    for _ in range(20):
        i = int(rng.integers(1, len(word)))
        kind = _pick(rng, ["swap", "drop", "double"])
        if kind == "swap" and i < len(word) - 1 and word[i] != word[i + 1]:
            typo = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif kind == "drop":
            typo = word[:i] + word[i + 1 :]
        else:
            typo = word[:i] + word[i] + word[i:]
        if typo.lower() not in _KNOWN_WORDS and typo != word:
            return typo
    return word + word[-1]


def _misspelling(text: str, rng: np.random.Generator) -> tuple[str, dict[str, str]]:
    match = _pick(rng, list(_VOCAB_WORD.finditer(text)))
    typo = _misspell_word(match.group(1), rng)
    return text[: match.start()] + typo + text[match.end() :], {"word": match.group(1), "as": typo}


def _language(text: str, rng: np.random.Generator) -> tuple[str, str]:
    language = _pick(rng, LANGUAGES)
    return translate(text, language), language


def _stock_framing(text: str, rng: np.random.Generator) -> tuple[str, str]:
    template = _pick(rng, _STOCK_TEMPLATES)
    return template.format(t=text, id=int(rng.integers(10**8, 10**9))), template


def _file_name(text: str, rng: np.random.Generator) -> tuple[str, str]:
    if rng.random() < 0.25:  # a camera file name left next to the text
        name = f"{_pick(rng, ['IMG_', 'DSC', 'PXL_', 'image'])}{int(rng.integers(1, 10000)):04d}.{_pick(rng, ['jpg', 'JPG', 'png'])}"
        return f"{text} ({name})", "camera"
    stem = re.sub(r"\.(?:jpe?g|png|gif|webp)$", "", text.strip(), flags=re.IGNORECASE)
    words = [w for w in re.findall(r"[^\W_]+", stem.lower()) if w not in _FILE_STOPWORDS]
    separator = _pick(rng, ["-", "-", "_"])
    suffix = _pick(rng, ["", "", "", "-1", "_final", "-copy", "-min"])
    extension = _pick(rng, ["jpg", "jpg", "png", "jpeg", "webp"])
    return f"{separator.join(words) or 'image'}{suffix}.{extension}", "slug"


def _seo_keywords(text: str, rng: np.random.Generator) -> tuple[str, list[str]]:
    from curate_world.attributes import extract_attributes

    said = extract_attributes(normalize_web_text(text))
    keywords = [str(w) for w in rng.choice(_SEO_WORDS, size=int(rng.integers(3, 8)), replace=False)]
    keywords += [c for c in sorted(said.colors) if rng.random() < 0.5]
    keywords += [e.lower() for e in dict.fromkeys(said.entities) if rng.random() < 0.5]
    keywords = [keywords[i] for i in rng.permutation(len(keywords))]
    separator = _pick(rng, [", ", ", ", " ", " | "])
    return text + separator + separator.join(keywords), keywords


def _all_caps(text: str, rng: np.random.Generator) -> tuple[str, None]:
    return text.upper(), None


def _title_case(text: str, rng: np.random.Generator) -> tuple[str, None]:
    return re.sub(r"(?<![\w'&#])([^\W\d_])", lambda m: m.group(1).upper(), text), None


def _html(text: str, rng: np.random.Generator) -> tuple[str, list[str]]:
    if not text.strip():
        remnant = _pick(rng, ["&nbsp;", "<br>", "<p></p>", "<br/>"])
        return remnant, [remnant]
    ops = [op for op in ("amp", "nbsp", "quote", "tag", "br") if rng.random() < 0.4] or [
        _pick(rng, ["amp", "quote", "tag"])
    ]
    if "amp" in ops:
        text = re.sub(r" and ", " &amp; ", text, flags=re.IGNORECASE) if re.search(" and ", text, re.I) else (
            text + " &amp; more"
        )
    if "nbsp" in ops and " " in text:
        spaces = [m.start() for m in re.finditer(" ", text)]
        at = _pick(rng, spaces)
        text = text[:at] + "&nbsp;" + text[at + 1 :]
    if "quote" in ops:
        quote = _pick(rng, ["&#39;", "&quot;"])
        text = f"{quote}{text}{quote}"
    if "tag" in ops:
        tag = _pick(rng, ["b", "strong", "em", "p", 'span class="caption"'])
        text = f"<{tag}>{text}</{tag.split()[0]}>"
    if "br" in ops:
        text += _pick(rng, ["<br>", "<br/>", " <br />"])
    return text, ops


def _emoji(text: str, rng: np.random.Generator) -> tuple[str, list[str]]:
    chosen = [str(e) for e in rng.choice(_EMOJI, size=int(rng.integers(1, 4)), replace=False)]
    if rng.random() < 0.3:
        return f"{chosen[0]} {text} {''.join(chosen[1:])}".rstrip(), chosen
    return f"{text} {''.join(chosen)}", chosen


def _truncation(text: str, rng: np.random.Generator) -> tuple[str, dict[str, Any]]:
    words = list(re.finditer(r"[^\W\d_]{3,}", text))
    late = [w for w in words if w.end() > len(text) // 2]  # length limits cut late, not in the first word
    word = _pick(rng, late or words)
    cut = int(rng.integers(word.start() + 1, word.end()))
    ellipsis = _pick(rng, ["", "", "…", "..."])
    return text[:cut] + ellipsis, {"at": cut, "of": len(text), "word": word.group(0), "kept": text[word.start() : cut]}


_WRITERS = {
    "synonym": _synonym,
    "misspelling": _misspelling,
    "language": _language,
    "stock_framing": _stock_framing,
    "file_name": _file_name,
    "seo_keywords": _seo_keywords,
    "all_caps": _all_caps,
    "title_case": _title_case,
    "html": _html,
    "emoji": _emoji,
    "truncation": _truncation,
}
