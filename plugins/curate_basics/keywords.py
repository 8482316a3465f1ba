"""Search keywords appended to alt-text: "An orange box, flat, abstract, symbol, orange, free" →
"An orange box".

Stock and clip-art pages append keywords for search engines to the description, separated by
commas, pipes or spaces ("… isolated png best hd", "… | vector, clipart, free download"). They say
nothing about the image and pull an image–text model toward "any picture": a true description with
such a tail scores like a wrong one. ``strip_boilerplate``'s ``keywords: true`` removes them.

What is removed is a run of items at the end of the text, read from its end:

- an item is a word of :data:`SEO_WORDS` (or a two-word phrase of :data:`SEO_PHRASES`, or a year);
- up to three words the text said before, as an item of a list (after a comma, pipe, semicolon,
  slash or bullet) or after a keyword: pages repeat a colour or a name ("a brown star, free,
  brown", "… | halvendor lighthouse | template", "… hd png blue");
- one word between two keywords ("hd black flat"), or last in a list after one ("…, free, red");
- the last item may be cut short ("… png best s…") where it starts a keyword;
- the run holds at least two keywords, and at least one word stays before it; a text in quotes is
  read inside them, and keeps them.

Anything else ends the run: a word the text has not said, an item of two words or more that is no
phrase, a full stop or bracket between items. So a description's own words stay ("a red circle and
a blue square, free, hd" keeps "a red circle and a blue square"), and a text that is only keywords
is left as it is (``generic: true`` is for those). Linear in the text's length.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import polars as pl

# Words stock, clip-art and wallpaper pages add for search engines, never about what the image shows.
# Words that can describe an image's content (background, logo, sign, shape, line, pattern) are not here.
SEO_WORDS = frozenset("""
    free download downloads downloadable hd 4k 8k uhd hq png jpg jpeg svg eps psd ai webp gif
    transparent isolated vector vectors clipart cliparts clip-art icon icons graphic graphics design designs
    template templates mockup flat modern simple minimal minimalist abstract geometric geometrical symbol
    symbols art artwork illustration illustrations image images photo photos picture pictures pic pics
    stock royalty-free premium cheap best top new trending popular cool cute editable printable
    digital wallpaper wallpapers cartoon silhouette drawing sticker stickers emoji emblem creative
""".split())
SEO_PHRASES = frozenset({("royalty", "free"), ("clip", "art"), ("high", "quality"), ("high", "resolution"),
                         ("free", "download"), ("no", "background"), ("for", "free")})
_YEAR = re.compile(r"(?:19|20)[0-9]{2}")
_TOKEN = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_LIST = frozenset(",|;/·•")
_ELLIPSIS = ("...", "…")
_FUNCTION_WORDS = frozenset({"a", "an", "the", "and", "or", "of", "with", "on", "in", "at", "to", "for", "y", "und"})
# Category words a page lists as keywords, counted as one where they stand alone in a list
# (", shapes,"): after a space they may be the description's own ("three red shapes").
_LIST_KEYWORDS = frozenset({"shapes", "shape", "objects", "elements", "backgrounds"})
_PREFIXES = frozenset(word[:n] for word in SEO_WORDS for n in range(1, len(word)) if word[:n].isalpha())


# A run holds two keywords at least, and each holds one of these words (lower case) as a piece of
# text: texts in which they occur fewer than twice are left without reading them in Python.
_PIECES = sorted(SEO_WORDS | {second for _, second in SEO_PHRASES}, key=lambda word: (-len(word), word))
_PIECE = "|".join([*map(re.escape, _PIECES), "19[0-9]{2}", "20[0-9]{2}"])


def strip_keywords_series(texts: pl.Series) -> pl.Series:
    """:func:`strip_keywords` of each text (nulls stay null); only texts holding two keywords or
    more are read in Python."""
    candidates = (texts.str.to_lowercase().str.count_matches(_PIECE) >= 2).fill_null(False).arg_true()
    if not len(candidates):
        return texts
    return texts.clone().scatter(candidates, [strip_keywords(text) for text in texts.gather(candidates)])


def _is_keyword(word: str) -> bool:
    return word in SEO_WORDS or _YEAR.fullmatch(word) is not None


def _separator_only(gap: str) -> bool:
    """Whether the text between two items holds only spaces, list separators, symbols and emoji."""
    for char in gap:
        if char.isspace() or char in _LIST or char in "-–—":
            continue
        if unicodedata.category(char) in ("So", "Sk") or char in "\u200d\ufe0f":
            continue
        return False
    return True


def _trailing_gap(gap: str) -> bool:
    """Whether what follows the last word is only what may end a keyword list (an ellipsis too)."""
    for ellipsis in _ELLIPSIS:
        gap = gap.replace(ellipsis, " ")
    return _separator_only(gap)


def _in_list(gap: str) -> bool:
    return any(char in _LIST for char in gap)


def _plain(word: str) -> bool:
    """A word that may be repeated in a keyword list: letters, no keyword, no function word."""
    return word.isalpha() and word not in _FUNCTION_WORDS and not _is_keyword(word)


def strip_keywords(text: str) -> str:
    """``text`` without its trailing run of search keywords (module docstring); as it came where it
    has none. The separators before the run go with it; a text in quotes keeps them."""
    if len(text) > 2 and text[0] == text[-1] and text[0] in "'\"":  # '…, free, hd': the quotes stay
        inner = strip_keywords(text[1:-1])
        return text if inner == text[1:-1] else text[0] + inner + text[0]
    tokens = list(_TOKEN.finditer(text))
    if len(tokens) < 3 or not _trailing_gap(text[tokens[-1].end():]):
        return text
    words = [token.group(0).lower() for token in tokens]
    left = Counter(words)  # how often each word occurs up to the item looked at

    def gap(i: int) -> str:  # the text between item i - 1 and item i
        return text[tokens[i - 1].end():tokens[i].start()]

    def repeated(i: int) -> int | None:
        """Where a group of up to three words ending at ``i`` starts, each said before the group
        ("…, halvendor lighthouse, template", "… png blue"), when the group is a list item or follows
        a keyword; None (and nothing counted) otherwise."""
        taken: list[str] = []
        for j in range(i, max(i - 3, 0), -1):
            if not _plain(words[j]) or left[words[j]] - taken.count(words[j]) <= 1 or not _separator_only(gap(j)):
                return None
            taken.append(words[j])
            if _in_list(gap(j)) or (j > 1 and _is_keyword(words[j - 1])):
                for word in taken:
                    left[word] -= 1
                return j
        return None

    last, keywords, start, i, after_keyword = len(tokens) - 1, 0, len(tokens), len(tokens) - 1, False
    # A keyword cut short at the very end ("best s…", "png tra"): in the run if it starts one.
    if words[i] not in SEO_WORDS and words[i] in _PREFIXES:
        left[words[i]] -= 1
        start, i = i, i - 1
    while i > 0 and _separator_only(gap(i)):
        word, in_list = words[i], _in_list(gap(i))
        if i > 1 and (words[i - 1], word) in SEO_PHRASES and not in_list and _separator_only(gap(i - 1)):
            left[word] -= 1
            left[words[i - 1]] -= 1
            keywords, start, i, after_keyword = keywords + 1, i - 1, i - 2, True
            continue
        if _is_keyword(word) or (in_list and word in _LIST_KEYWORDS):
            left[word] -= 1
            keywords, after_keyword, start, i = keywords + 1, True, i, i - 1
            continue
        group = repeated(i)
        if group is not None:
            after_keyword, start, i = False, group, group - 1
            continue
        # One word between two keywords ("hd black flat"), or last in a list after one ("…, free, red").
        if _plain(word) and _is_keyword(words[i - 1]) and (after_keyword or (i == last and in_list)):
            left[word] -= 1
            after_keyword, start, i = False, i, i - 1
            continue
        break
    if keywords < 2 or all(_is_keyword(word) for word in words[:start]):
        return text
    return text[:tokens[start].start()].rstrip(" \t\n,|;/·•-–—")
