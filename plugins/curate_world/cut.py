"""What a truncated alt-text still says about its image.

A wrong-attribute alt-text cut before its wrong part ("an orange cross and t…" for an orange cross
and one yellow cross, written as "an orange cross and two yellow crosses") is true of the image,
only incomplete: its ground truth is ``partial``, not ``wrong_attribute``. The cut is judged by what
:func:`curate_world.attributes.score_caption` reads, both ways round for the word the cut went
through (left out, and read whole): only when neither states anything false while the uncut text
did is the wrong part gone. Two cases keep their label as written: a count whose noun the cut
went through ("… and three yello…" still says three of something), and a text in a second language,
which the extractor does not read.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from curate_world.attributes import score_caption
from curate_world.phrasing import NUMBER_WORDS, plural
from curate_world.vocab import SHAPE_SYNONYMS, SHAPES
from curate_world.webstyle import normalize_web_text

if TYPE_CHECKING:
    from curate_world.scene import Scene
    from curate_world.webstyle import Styled


_SHAPE_FORMS = {form for shape in (*SHAPES, *SHAPE_SYNONYMS) for form in (shape, plural(shape))}
_NUMBERS = set(NUMBER_WORDS.values())


def _words(text: str) -> str:
    """The text as the extractor should read it: markup undone, and a file name's words apart
    even when the cut took its extension ("red-circle-on-bei")."""
    return re.sub(r"[-_]+", " ", normalize_web_text(text))


def states_wrong(text: str, scene: Scene) -> bool:
    """Whether ``text`` says something false of ``scene``: a colour, shape or colour–shape pair
    not in it, or more objects than it has."""
    score = score_caption(_words(text), scene)
    precisions = (score.pair_precision, score.shape_precision, score.color_precision)
    return any(p is not None and p < 1 for p in precisions) or score.count_error > 0


def wrong_part_cut(plain: str, styled: Styled, scene: Scene) -> bool:
    """Whether the truncation in ``styled`` cut away everything false that ``plain`` (the text
    before styling) says of ``scene``."""
    cut = styled.detail.get("truncation")
    if cut is None or "language" in styled.styles or not states_wrong(plain, scene):
        return False
    start = cut["at"] - len(cut["kept"])  # where the word the cut went through begins
    left_out = styled.text[:start]
    read_whole = left_out + cut["word"]
    misspelt = styled.detail.get("misspelling")
    if misspelt is not None:  # read the misspelt word as the word it was
        typo = re.compile(rf"\b{re.escape(misspelt['as'])}\b", re.IGNORECASE)
        left_out, read_whole = (typo.sub(misspelt["word"], t) for t in (left_out, read_whole))
    return (not _count_without_noun(left_out) and not states_wrong(left_out, scene)
            and not states_wrong(read_whole, scene))


def _count_without_noun(text: str) -> bool:
    """Whether the last number ``text`` writes has no shape after it (the cut took its noun)."""
    words = _words(text).lower().split()
    numbers = [i for i, word in enumerate(words) if word in _NUMBERS]
    return bool(numbers) and not any(word in _SHAPE_FORMS for word in words[numbers[-1] + 1 :])
