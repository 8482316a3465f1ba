"""Minimal edits of a text: the same text with one colour, one shape or one count changed.

A CLIP score says how well a text fits an image *as a whole*, so a complete text with one
attribute wrong ("a red circle and a blue star" under a red circle and a green star) can outscore
a true but vague one ("a star"). Asking the model instead whether the text beats its own minimal
edits tests each claim: a true text outscores every edit of it, a text with a wrong attribute
loses to the edit that corrects it. ``clip_score`` with ``edits:`` does that
(:func:`minimal_edits` here, the scoring in ``score.py``).

A vocabulary says which words may replace each other. It is plain data, the same whether a
plugin provides it by name (``curate_clip_vocabularies``) or a spec writes it inline::

    classes:
      color: {words: [red, green, blue], synonyms: {crimson: red}}
      shape: {words: [circle, star], nouns: true}    # count nouns: "two stars" <-> "a star"
    max_count: 3

Words of one class replace each other; a synonym is read as its word and never offered as that
word's replacement. In a class of ``nouns``, a count before the noun ("a", "an", "one" ... "ten",
up to two words away) is changed too, with the noun's number made to agree ("two red circles" ->
"a red circle"). Matching ignores case; a replacement takes the case of the word it replaces.

A text is compared with its edits as the vocabulary *reads* it (:func:`reading`): each synonym
written as its word, and each of the vocabulary's other ``numbers`` (count words of another
language: ``{dos: 2, zwei: 2}``) before a noun of the vocabulary as the English count. The edits
then put readable words in the text's place, and the text is read as readably as they are; else an
alt-text in a language the model reads poorly ("ein roter Stern") would lose to every edit that puts
a word it reads well ("ein blue Stern") in the place of one it does not.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Bounds on a vocabulary from a stranger's spec: each text's edits are built lazily up to
# max_edits, but every written form goes into one regular expression.
MAX_WORDS = 5000  # words, synonyms or plurals of one class
MAX_CLASSES = 64
NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
COUNT_OF = {"a": 1, "an": 1, **{word: n for n, word in enumerate(NUMBER_WORDS, start=1)}}
_WORD = re.compile(r"^[^\W\d_]+(?:[ '-][^\W\d_]+)*$")


def english_plural(noun: str) -> str:
    if noun.endswith(("s", "x", "z", "sh", "ch")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u", ""):
        return noun[:-1] + "ies"
    return noun + "s"


def article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def like(word: str, model: str) -> str:
    """``word`` in the case of ``model``: ALL CAPS, Capitalised, or as it is."""
    if len(model) > 1 and model.isupper():
        return word.upper()
    if model[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


class WordClass(BaseModel):
    """Words that may replace each other, the other ways of writing them, and whether they are
    count nouns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    words: list[str] = Field(min_length=2, max_length=MAX_WORDS, description="interchangeable words (lower case)")
    synonyms: dict[str, str] = Field({}, max_length=MAX_WORDS, description="another way to write a word -> that word")
    nouns: bool = Field(False, description="count nouns: counts before them are edited too")
    plurals: dict[str, str] = Field({}, max_length=MAX_WORDS,
                                    description="irregular plurals (nouns); others get the English rule")

    @field_validator("words")
    @classmethod
    def _words(cls, words: list[str]) -> list[str]:
        for word in words:
            if not _WORD.match(word) or word != word.lower():
                raise ValueError(f"'{word}' is not a lower-case word or phrase of letters")
        if len(set(words)) != len(words):
            raise ValueError("a word is listed twice")
        return words

    @model_validator(mode="after")
    def _known(self) -> WordClass:
        for synonym, word in self.synonyms.items():
            if word not in self.words:
                raise ValueError(f"synonym '{synonym}' is of '{word}', which is not one of the class's words")
            if synonym in self.words:
                raise ValueError(f"'{synonym}' is both a word and a synonym")
            if not _WORD.match(synonym) or synonym != synonym.lower():
                raise ValueError(f"synonym '{synonym}' is not a lower-case word or phrase of letters")
        if self.plurals and not self.nouns:
            raise ValueError("'plurals' goes with 'nouns: true'")
        for word, plural in self.plurals.items():
            if word not in self.words and word not in self.synonyms:
                raise ValueError(f"plural of '{word}', which is neither a word nor a synonym of the class")
            if not _WORD.match(plural) or plural != plural.lower():
                raise ValueError(f"plural '{plural}' of '{word}' is not a lower-case word or phrase of letters")
        meaning: dict[str, tuple[str, bool]] = {}  # written form -> (the word it means, plural)
        for form, word in [*((w, w) for w in self.words), *self.synonyms.items()]:
            for written, plural in [(form, False), *([(self.plural(form), True)] if self.nouns else [])]:
                if meaning.setdefault(_squash(written), (word, plural)) != (word, plural):
                    other, other_plural = meaning[_squash(written)]
                    raise ValueError(f"'{written}' is written the same as {'a plural of ' if other_plural else ''}"
                                     f"'{other}': the class cannot tell them apart")
        return self

    def plural(self, word: str) -> str:
        return self.plurals.get(word) or english_plural(word)


class EditVocabulary(BaseModel):
    """The classes of interchangeable words; see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classes: dict[str, WordClass] = Field(min_length=1, max_length=MAX_CLASSES)
    max_count: int = Field(3, ge=2, le=len(NUMBER_WORDS), description="counts are edited among 1..max_count")
    typos: bool = Field(False, description="read a word one typo from a one-word form of 4 to 32 letters (a "
                                           "letter dropped, doubled, or two neighbours swapped) as that form")
    numbers: dict[str, int] = Field({}, max_length=MAX_WORDS,
                                    description="other ways to write a count before a noun (another language's "
                                                "'dos', 'zwei'): read as the English count")
    glossary: dict[str, str] = Field({}, max_length=MAX_WORDS,
                                     description="other words read as these (another language's 'und': 'and', "
                                                 "'klein': 'small'), so the model reads the text around the edits; "
                                                 "never edited")
    fragments: bool = Field(False, description="read a text's last word cut short (2+ letters, the start of exactly "
                                               "one word of the vocabulary, as a length limit cuts alt-text) as "
                                               "that word: 'a blue squ…' -> 'a blue square…'")
    unedited_before: list[str] = Field([], max_length=MAX_WORDS,
                                       description="a class word right before one of these is not edited ('white' "
                                                   "in 'a white background'): for claims the model cannot check")
    unedited_after: list[str] = Field([], max_length=MAX_WORDS,
                                      description="a class word right after one of these is not edited ('blanco' "
                                                  "in 'fondo blanco')")

    @field_validator("glossary")
    @classmethod
    def _glossary_words(cls, glossary: dict[str, str]) -> dict[str, str]:
        for word, meaning in glossary.items():
            for written in (word, meaning):
                if not _WORD.match(written) or written != written.lower():
                    raise ValueError(f"glossary '{word}': '{written}' is not a lower-case word or phrase of letters")
        return glossary

    @field_validator("unedited_before", "unedited_after")
    @classmethod
    def _context_words(cls, words: list[str]) -> list[str]:
        for word in words:
            if not _WORD.match(word) or word != word.lower():
                raise ValueError(f"'{word}' is not a lower-case word or phrase of letters")
        return words

    @field_validator("numbers")
    @classmethod
    def _numbers(cls, numbers: dict[str, int]) -> dict[str, int]:
        for word, count in numbers.items():
            if not _WORD.match(word) or word != word.lower():
                raise ValueError(f"number '{word}' is not a lower-case word or phrase of letters")
            if word in COUNT_OF:
                raise ValueError(f"'{word}' is an English count already")
            if not 1 <= count <= len(NUMBER_WORDS):
                raise ValueError(f"number '{word}' is {count}; counts are 1..{len(NUMBER_WORDS)}")
        return numbers

    @model_validator(mode="after")
    def _one_class_each(self) -> EditVocabulary:
        seen: dict[str, str] = {}
        for name, word_class in self.classes.items():
            forms = [*word_class.words, *word_class.synonyms]
            if word_class.nouns:
                forms += [word_class.plural(w) for w in forms]
            for form in forms:
                if seen.get(form, name) != name:
                    raise ValueError(f"'{form}' is in both class '{seen[form]}' and class '{name}'")
                seen[form] = name
        written = {_squash(form): name for form, name in seen.items()}  # once: a stranger's spec may list 5,000 numbers
        for number in self.numbers:
            if _squash(number) in written:
                raise ValueError(f"number '{number}' is also a word of class '{written[_squash(number)]}'")
        for word, meaning in self.glossary.items():
            for form in (word, meaning):
                if _squash(form) in written:
                    raise ValueError(f"glossary '{word}': '{form}' is a word of class '{written[_squash(form)]}': "
                                     f"write '{word}' as a synonym there")
            if word in self.numbers or word in COUNT_OF:
                raise ValueError(f"glossary word '{word}' is a count: write it in numbers")
        if self.typos and (many := sum(1 for form in self._forms if _typo_source(form))) > MAX_TYPO_FORMS:
            raise ValueError(f"typos: true reads typos of at most {MAX_TYPO_FORMS} one-word forms of "
                             f"{TYPO_MIN}-{TYPO_MAX} letters; this vocabulary has {many}")
        return self

    @cached_property
    def _forms(self) -> dict[str, tuple[str, str, bool]]:
        """Every written form (lower case) -> (class, the word it means, plural)."""
        forms: dict[str, tuple[str, str, bool]] = {}
        for name, word_class in self.classes.items():
            for form, word in [*((w, w) for w in word_class.words), *word_class.synonyms.items()]:
                forms[_squash(form)] = (name, word, False)
                if word_class.nouns:
                    forms[_squash(word_class.plural(form))] = (name, word, True)
        return forms

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        return _alternation(self._forms)

    @cached_property
    def _typos(self) -> dict[str, str]:
        """Each word of 4 or more letters one typo from exactly one single-word form (of 4 or more
        letters) and no form itself -> that form."""
        found: dict[str, set[str]] = {}
        for form in filter(_typo_source, self._forms):
            for typo in _one_typo(form):
                if len(typo) >= TYPO_MIN and typo not in self._forms:
                    found.setdefault(typo, set()).add(form)
        return {typo: next(iter(forms)) for typo, forms in found.items() if len(forms) == 1}

    @cached_property
    def _glossary_pattern(self) -> re.Pattern[str]:
        return _alternation(self.glossary)

    @cached_property
    def _glossary_meaning(self) -> dict[str, str]:
        return {_squash(word): meaning for word, meaning in self.glossary.items()}

    @cached_property
    def _completions(self) -> list[str]:
        """Every one-word form and context word, sorted, for :func:`_complete`'s prefix search."""
        words = {*self._forms, *self.unedited_before, *self.unedited_after}
        return sorted(w for w in words if _WORD_OF_LETTERS.fullmatch(w))

    @cached_property
    def _unedited_before_pattern(self) -> re.Pattern[str] | None:
        """A gap and then a word of ``unedited_before``: a class word ending where it starts is kept."""
        return _context(self.unedited_before, rf"(?<![\s_-]){_GAP}({{}}){_END}")  # a gap tried once: linear

    @cached_property
    def _unedited_after_pattern(self) -> re.Pattern[str] | None:
        """A word of ``unedited_after`` and then a gap: a class word starting where it ends is kept."""
        return _context(self.unedited_after, rf"{_START}({{}}){_GAP}")

    @cached_property
    def _count_pattern(self) -> re.Pattern[str] | None:
        return self._counted(COUNT_OF)

    @cached_property
    def _number_pattern(self) -> re.Pattern[str] | None:
        return self._counted(self.numbers) if self.numbers else None

    def _counted(self, counts: Any) -> re.Pattern[str] | None:
        """A count word of ``counts``, then up to two words, then a noun of the vocabulary."""
        nouns = [form for form, (name, _, _) in self._forms.items() if self.classes[name].nouns]
        if not nouns:
            return None
        words = "|".join(re.escape(w).replace(r"\ ", _GAP) for w in sorted(counts, key=len, reverse=True))
        between = rf"((?:[^\W\d_]+{_GAP}){{0,2}}?)"  # up to two words: "two small red circles"
        return re.compile(rf"{_START}({words})({_GAP}){between}{_alternation(nouns).pattern}", re.IGNORECASE)


# Words end at anything but a letter or digit: an underscore or hyphen separates them too, as in
# the file names web pages use for alt-text ("two_red_circles.jpg", "red-circle-logo.png").
_START, _END = r"(?<![^\W_])", r"(?![^\W_])"
_GAP = r"[\s_-]+"


def _alternatives(words: Any) -> str:
    """``words`` as regex alternatives, longest first ("crosses" before "cross"), a space or
    hyphen inside one matching any gap."""
    return "|".join(re.escape(w).replace(r"\ ", _GAP).replace(r"\-", _GAP)
                    for w in sorted(words, key=len, reverse=True))


def _context(words: list[str], template: str) -> re.Pattern[str] | None:
    return re.compile(template.format(_alternatives(words)), re.IGNORECASE) if words else None


def _alternation(forms: Any) -> re.Pattern[str]:
    return re.compile(rf"{_START}({_alternatives(forms)}){_END}", re.IGNORECASE)


@dataclass(frozen=True)
class Edit:
    text: str
    kind: str  # the class whose word changed, or "count"


def minimal_edits(text: str, vocabulary: EditVocabulary, limit: int | None = None) -> list[Edit]:
    """Each way to change one word of a class (or one count) of ``text``, in the order the words
    appear; distinct texts, never ``text`` itself; at most ``limit``."""
    edits: dict[str, Edit] = {}

    def add(new: str, kind: str) -> None:
        if new != text and new not in edits:
            edits[new] = Edit(new, kind)

    changes: list[tuple[int, int, Iterator[tuple[str, str]]]] = []
    kept_ends = ({m.start() for m in vocabulary._unedited_before_pattern.finditer(text)}
                 if vocabulary._unedited_before_pattern is not None else set())
    kept_starts = ({m.end() for m in vocabulary._unedited_after_pattern.finditer(text)}
                   if vocabulary._unedited_after_pattern is not None else set())
    for match in vocabulary._pattern.finditer(text):
        if match.end() not in kept_ends and match.start() not in kept_starts:
            changes.append((match.start(), match.end(), _word_options(match.group(1), vocabulary)))
    if vocabulary._count_pattern is not None:
        for match in vocabulary._count_pattern.finditer(text):
            changes.append((match.start(), match.end(), iter(_count_options(match, vocabulary))))
    for start, end, options in sorted(changes, key=lambda change: change[0]):
        for replacement, kind in options:  # lazily: a long text or a big class stops at the limit
            if limit is not None and len(edits) >= limit:
                return list(edits.values())
            add(text[:start] + replacement + text[end:], kind)
    return list(edits.values())


def reading(text: str, vocabulary: EditVocabulary) -> str:
    """``text`` as ``vocabulary`` reads it: each synonym written as its word (in its number and
    case), each of its ``numbers`` before a noun as the English count ("dos círculos rojos" with
    the world's Spanish forms -> "two circles red"; "a violet disc" -> "a purple circle"); with
    ``typos``, first each word one typo from a form as that form ("a bleu cirlce" -> "a blue
    circle"). First of all, each word of its ``glossary`` as the word it gives ("ein roter Kreis
    und ein kleiner Stern" -> "… and … small …"). A text with none of these comes back as it is."""
    if vocabulary.glossary:
        text = vocabulary._glossary_pattern.sub(
            lambda m: like(vocabulary._glossary_meaning[_squash(m.group(1))], m.group(1)), text)
    if vocabulary.fragments:
        text = _complete(text, vocabulary)
    if vocabulary.typos:
        def corrected(match: re.Match[str]) -> str:
            form = vocabulary._typos.get(match.group(1).lower())
            return match.group(1) if form is None else like(form, match.group(1))

        text = _LETTER_WORD.sub(corrected, text)
    if vocabulary._number_pattern is not None:
        def count_for(match: re.Match[str]) -> str:
            count = vocabulary.numbers[_squash(match.group(1))]
            return like(NUMBER_WORDS[count - 1], match.group(1)) + match.group(0)[len(match.group(1)):]

        text = vocabulary._number_pattern.sub(count_for, text)

    def word_for(match: re.Match[str]) -> str:
        written = match.group(1)
        name, word, plural = vocabulary._forms[_squash(written)]
        canonical = vocabulary.classes[name].plural(word) if plural else word
        return written if _squash(written) == _squash(canonical) else like(canonical, written)

    return vocabulary._pattern.sub(word_for, text)


TYPO_MIN = 4  # shorter words are too often other words one typo away ("dsc", "pin", "ble")
TYPO_MAX = 32
MAX_TYPO_FORMS = 20_000  # ~100 typos a form: a stranger's vocabulary builds at most ~2M of them
_WORD_OF_LETTERS = re.compile(r"[^\W\d_]+")
_LETTER_WORD = re.compile(rf"{_START}([^\W\d_]+){_END}")


# The end of a text cut short: its last word, then nothing or an ellipsis. Short words that
# start a vocabulary word but are words themselves are never read as cut ("or" is not "orange").
_LAST_WORD = re.compile(rf"{_START}([^\W\d_]{{2,32}})(\s*(?:…|\.\.\.)?\s*)$")
_WHOLE_WORDS = frozenset({*COUNT_OF, "as", "at", "be", "by", "he", "in", "is", "it", "no", "of", "on", "or", "so",
                          "to", "up", "we"})


def _complete(text: str, vocabulary: EditVocabulary) -> str:
    """``text`` with its last word read whole where a cut took its end: where the words it starts
    are one word and its endings ("squ" -> "square", the shortest of "square", "squares")."""
    tail = text[-64:]  # a cut word is at most 32 letters and an ellipsis
    match = _LAST_WORD.search(tail)
    if match is None:
        return text
    cut = match.group(1).lower()
    completions = vocabulary._completions
    found = completions[bisect.bisect_left(completions, cut):bisect.bisect_right(completions, cut + "\U0010ffff")]
    if cut in _WHOLE_WORDS or not found or found[0] == cut:  # sorted: a whole word comes first
        return text
    if not all(word.startswith(found[0]) for word in found):  # one word and its endings, the shortest first
        return text
    start = len(text) - len(tail) + match.start(1)
    word = found[0]
    plurals = [w for w in found if w in vocabulary._forms and vocabulary._forms[w][2]]
    if plurals and any(COUNT_OF.get(w, vocabulary.numbers.get(w, 0)) > 1 for w in re.split(_GAP, text[:start].lower())[-4:]):
        word = plurals[0]  # "two red circ" -> "two red circles"
    return text[:start] + like(word, match.group(1)) + match.group(2)


def _typo_source(form: str) -> bool:
    return TYPO_MIN <= len(form) <= TYPO_MAX and _WORD_OF_LETTERS.fullmatch(form) is not None


def _one_typo(word: str) -> set[str]:
    """The words one typo from ``word``: a letter dropped, a letter doubled, two neighbours swapped."""
    out = set()
    for i in range(len(word)):
        out.add(word[:i] + word[i + 1:])
        out.add(word[:i] + word[i] + word[i:])
        if i < len(word) - 1:
            out.add(word[:i] + word[i + 1] + word[i] + word[i + 2:])
    out.discard(word)
    return out


def _word_options(written: str, vocabulary: EditVocabulary) -> Iterator[tuple[str, str]]:
    """Each other word of the written word's class, as it would be written in its place."""
    name, word, plural = vocabulary._forms[_squash(written)]
    word_class = vocabulary.classes[name]
    for other in word_class.words:
        if other != word:
            yield like(word_class.plural(other) if plural else other, written), name


def _squash(written: str) -> str:
    return " ".join(re.split(_GAP, written.lower()))


def _count_options(match: re.Match[str], vocabulary: EditVocabulary) -> list[tuple[str, str]]:
    count_word, gap, between, noun_written = match.group(1), match.group(2), match.group(3), match.group(4)
    count = COUNT_OF[count_word.lower()]
    name, word, plural = vocabulary._forms[_squash(noun_written)]
    if plural != (count > 1):  # "a photo of circles": the count is not the noun's
        return []
    word_class = vocabulary.classes[name]
    written = _squash(noun_written)
    singular = next(form for form in (word, *word_class.synonyms)
                    if _squash(form) == written or _squash(word_class.plural(form)) == written)
    options = []
    for new in range(1, vocabulary.max_count + 1):
        if new == count:
            continue
        noun = like(singular if new == 1 else word_class.plural(singular), noun_written)
        phrase = between + noun
        counted = article(phrase) if new == 1 else NUMBER_WORDS[new - 1]
        options.append((like(counted, count_word) + gap + phrase, "count"))
    return options


def available_vocabularies(pm: Any = None) -> dict[str, dict[str, Any]]:
    """Every named vocabulary the installed plugins provide; a name claimed twice is an error, a
    plugin whose hook raises is named in a warning and skipped (as for every registering hook)."""
    from curate.errors import PluginError
    from curate.plugins import get_plugin_manager

    manager = pm or get_plugin_manager()
    found: dict[str, dict[str, Any]] = {}
    owners: dict[str, str] = {}
    hook = getattr(manager.hook, "curate_clip_vocabularies", None)
    for impl in (hook.get_hookimpls() if hook is not None else []):
        try:
            provided = dict(impl.function() or {})
        except Exception as exc:  # a broken plugin must not break every run
            manager.plugin_failed(impl.plugin_name, "its curate_clip_vocabularies hook", exc)
            continue
        for name, data in provided.items():
            if name in found and found[name] != data:
                raise PluginError(f"edit vocabulary '{name}' is provided by both plugin '{owners[name]}' "
                                  f"and plugin '{impl.plugin_name}'", hint="uninstall or rename one of them")
            found[name], owners[name] = data, impl.plugin_name
    return found


def vocabulary_problem(name: str, pm: Any = None) -> str | None:
    """Why ``edits: name`` cannot be used (unknown, or what its plugin provides is invalid), or None."""
    from pydantic import ValidationError

    known = available_vocabularies(pm)
    if name not in known:
        return (f"edits: unknown vocabulary '{name}'; known: {', '.join(sorted(known)) or 'none'} "
                "(or write one inline: edits: {classes: {color: {words: [red, green, blue]}}})")
    try:
        EditVocabulary.model_validate(known[name])
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"edits: vocabulary '{name}' from its plugin is invalid: {where}: {first['msg']}"
    return None


def resolve_vocabulary(edits: str | EditVocabulary, pm: Any = None) -> EditVocabulary:
    """``edits`` as a vocabulary: a name a plugin provides, or one written inline (already checked)."""
    if isinstance(edits, EditVocabulary):
        return edits
    problem = vocabulary_problem(edits, pm)
    if problem is not None:
        from curate.errors import SpecError

        raise SpecError(problem)
    return EditVocabulary.model_validate(available_vocabularies(pm)[edits])
