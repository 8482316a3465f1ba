"""Minimal edits (curate_clip.edits): what an edit may change, and the vocabularies that say so.

No torch needed: the edits are text, the vocabularies plain data."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from curate import hookimpl
from curate.errors import PluginError, SpecError
from curate.plugins import PluginManager
from curate_clip.edits import (
    COUNT_OF,
    _one_typo,
    EditVocabulary,
    available_vocabularies,
    english_plural,
    like,
    minimal_edits,
    reading,
    resolve_vocabulary,
    vocabulary_problem,
)

SMALL = EditVocabulary.model_validate({
    "classes": {
        "color": {"words": ["red", "green", "blue"], "synonyms": {"crimson": "red"}},
        "shape": {"words": ["circle", "star", "cross"], "synonyms": {"disc": "circle"}, "nouns": True},
    },
    "max_count": 3,
})
FORMS = {"red": "color", "green": "color", "blue": "color", "crimson": "color",
         **{w: "shape" for w in ("circle", "star", "cross", "disc", "circles", "stars", "crosses", "discs")}}
FILLER = ["photo", "of", "on", "a", "two", "three", "an", "and", "big", "the", "background", "x", "-", "|", ","]


def words_of(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+|\d+|[^\w\s]", text)


texts = st.lists(st.sampled_from([*FORMS, *FILLER, *(w.upper() for w in FORMS), *(w.title() for w in FORMS)]),
                 max_size=12).map(" ".join)


@given(texts)
@settings(max_examples=300)
def test_an_edit_changes_one_word_of_a_class_or_one_count(text):
    before = words_of(text)
    for edit in minimal_edits(text, SMALL):
        assert edit.text != text
        after = words_of(edit.text)
        if edit.kind == "count":
            changed = [(a, b) for a, b in zip(before, after, strict=False) if a != b]
            assert len(before) == len(after) and 1 <= len(changed) <= 2, (text, edit.text)
            assert changed[0][0].lower() in COUNT_OF and changed[0][1].lower() in COUNT_OF
            if len(changed) == 2:  # the noun's number follows the count
                assert FORMS[changed[1][0].lower()] == FORMS[changed[1][1].lower()] == "shape"
        else:
            assert len(before) == len(after), (text, edit.text)
            changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
            assert len(changed) == 1, (text, edit.text)
            old, new = changed[0]
            assert FORMS[old.lower()] == edit.kind == FORMS.get(new.lower(), edit.kind)
            assert like(new.lower(), old) == new  # the case it replaced


@given(texts)
def test_edits_are_distinct_deterministic_and_limited(text):
    edits = minimal_edits(text, SMALL)
    assert len({e.text for e in edits}) == len(edits)
    assert minimal_edits(text, SMALL) == edits
    assert minimal_edits(text, SMALL, limit=3) == edits[:3]


@given(st.lists(st.sampled_from(FILLER), max_size=10).map(" ".join))
def test_a_text_without_vocabulary_words_has_no_edits(text):
    assert [e for e in minimal_edits(text, SMALL) if e.kind != "count"] == []
    assert minimal_edits(text, SMALL) == []


def test_a_word_is_never_replaced_by_itself_or_its_synonym():
    edits = {e.text for e in minimal_edits("a crimson disc", SMALL)}
    assert edits == {"a green disc", "a blue disc", "a crimson star", "a crimson cross",
                     "two crimson discs", "three crimson discs"}


def test_counts_agree_with_the_noun_and_keep_the_words_between():
    edits = [e.text for e in minimal_edits("Two big red crosses", SMALL) if e.kind == "count"]
    assert edits == ["A big red cross", "Three big red crosses"]
    assert [e.text for e in minimal_edits("an orange star", SMALL) if e.kind == "count"] == \
        ["two orange stars", "three orange stars"]
    assert [e.text for e in minimal_edits("a photo of stars", SMALL) if e.kind == "count"] == []  # "a" is not theirs
    shouted = [e.text for e in minimal_edits("STOCK PHOTO - TWO RED DISCS", SMALL) if e.kind == "count"]
    assert shouted == ["STOCK PHOTO - A RED DISC", "STOCK PHOTO - THREE RED DISCS"]


SYNONYM_OF = {"crimson": "red", "disc": "circle", "discs": "circles"}


@given(texts)
@settings(max_examples=300)
def test_reading_writes_each_synonym_as_its_word_in_its_number_and_case(text):
    read = reading(text, SMALL)
    before, after = words_of(text), words_of(read)
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        if old != new:
            assert new == like(SYNONYM_OF[old.lower()], old), (text, read)
        else:
            assert old.lower() not in SYNONYM_OF
    assert reading(read, SMALL) == read
    assert not any(w.lower() in SYNONYM_OF for edit in minimal_edits(read, SMALL) for w in words_of(edit.text))


@given(st.lists(st.sampled_from([w for w in FILLER if w.lower() not in COUNT_OF] + ["red", "star", "stars"]),
                max_size=12).map(" ".join))
def test_a_text_without_synonyms_or_numbers_is_read_as_written(text):
    numbered = EditVocabulary.model_validate({**SMALL.model_dump(), "numbers": {"dos": 2, "un": 1}})
    assert reading(text, SMALL) == text == reading(text, numbered)


def test_numbers_before_a_noun_are_read_as_english_counts():
    numbered = EditVocabulary.model_validate({**SMALL.model_dump(), "numbers": {"dos": 2, "zwei": 2, "un": 1}})
    assert reading("dos red circles", numbered) == "two red circles"
    assert reading("Zwei big red discs", numbered) == "Two big red circles"
    assert reading("UN DISC and dos", numbered) == "ONE CIRCLE and dos"  # no noun after the second
    assert reading("dos of the x y circles", numbered) == "dos of the x y circles"  # three words away
    assert [e.text for e in minimal_edits(reading("dos stars", numbered), numbered) if e.kind == "count"] == \
        ["a star", "three stars"]


TYPO_VOCABULARY = EditVocabulary.model_validate({**SMALL.model_dump(), "typos": True})


@given(st.sampled_from(["green", "circle", "cross", "crimson", "stars"]), st.integers(0, 10),
       st.sampled_from(["drop", "double", "swap"]), st.sampled_from([str.lower, str.upper, str.title]))
def test_a_word_one_typo_from_a_form_is_read_as_it(word, at, kind, case):
    i = at % len(word)
    typo = {"drop": word[:i] + word[i + 1:], "double": word[:i] + word[i] + word[i:],
            "swap": word[:i] + word[i + 1:i + 2] + word[i] + word[i + 2:]}[kind]
    text = f"a {case(typo)} on the x"
    read = reading(text, TYPO_VOCABULARY)
    if typo == word:  # a swap of two equal letters, or of the last one
        assert read == reading(f"a {case(word)} on the x", TYPO_VOCABULARY)
    elif len(typo) >= 4 and typo not in TYPO_VOCABULARY._forms:
        near = {form for form in TYPO_VOCABULARY._forms if typo in _one_typo(form)}
        if len(near) == 1:
            assert read == reading(f"a {case(word)} on the x", SMALL), (typo, read)
        else:  # "crosss": one typo from cross and from crosses, so read as neither
            assert read == text and len(near) > 1, (typo, near)
    assert reading(text, SMALL) == text or typo == word or typo in TYPO_VOCABULARY._forms  # off by default
    assert reading(read, TYPO_VOCABULARY) == read


def test_typos_leave_forms_short_words_and_ambiguous_ones_alone():
    vocabulary = EditVocabulary.model_validate({"classes": {"c": {"words": ["blue", "glue", "stars", "start"]}},
                                                "typos": True})
    assert reading("star red bleu", vocabulary) == "star red blue"  # 'star' is a typo of both stars and start
    assert reading("blu glue bule", vocabulary) == "blu glue blue"  # 3 letters; a form as it is


def test_english_plurals():
    assert [english_plural(w) for w in ("star", "cross", "box", "sky", "day", "bus")] == \
        ["stars", "crosses", "boxes", "skies", "days", "buses"]


@pytest.mark.parametrize("data, message", [
    ({"classes": {}}, "at least 1 item"),
    ({"classes": {"c": {"words": ["red"]}}}, "at least 2 items"),
    ({"classes": {"c": {"words": ["Red", "blue"]}}}, "not a lower-case word"),
    ({"classes": {"c": {"words": ["red", "blue"], "synonyms": {"navy": "teal"}}}}, "not one of the class's words"),
    ({"classes": {"c": {"words": ["red", "blue"]}, "d": {"words": ["red", "star"]}}}, "in both class 'c' and class 'd'"),
    ({"classes": {"c": {"words": ["red", "blue"], "plurals": {"red": "reds"}}}}, "'plurals' goes with 'nouns: true'"),
    ({"classes": {"c": {"words": ["red", "blue"]}}, "max_count": 99}, "less than or equal to 10"),
    ({"classes": {"c": {"words": ["red", "blue"], "colour": 1}}}, "Extra inputs are not permitted"),
    ({"classes": {name: {"words": [f"{name}{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}{chr(97 + i // 676)}"
                                   for i in range(5000)]} for name in ("word", "more", "also", "then")}
      | {"extra": {"words": ["extraone", "extratwo"]}}, "typos": True},
     "typos: true reads typos of at most 20000 one-word forms of 4-32 letters; this vocabulary has 20002"),
    ({"classes": {"c": {"words": ["red", "blue"]}}, "numbers": {"two": 2}}, "'two' is an English count already"),
    ({"classes": {"c": {"words": ["red", "blue"]}}, "numbers": {"dos": 11}}, "number 'dos' is 11; counts are 1..10"),
    ({"classes": {"c": {"words": ["red", "blue"]}}, "unedited_before": ["Background"]}, "'Background' is not a lower"),
    ({"classes": {"c": {"words": ["red", "blue"]}}, "unedited_after": ["(.*)*"]}, "'(.*)*' is not a lower-case"),
    ({"classes": {"c": {"words": ["red", "blue"]}}, "numbers": {"Dos": 2}}, "number 'Dos' is not a lower-case"),
    ({"classes": {"c": {"words": ["red", "blue"]}}, "numbers": {"red": 2}}, "number 'red' is also a word of class 'c'"),
    ({"classes": {"c": {"words": ["circle", "star"], "nouns": True, "plurals": {"circle": " "}}}}, "plural ' '"),
    ({"classes": {"c": {"words": ["circle", "star"], "nouns": True, "plurals": {"circle": "star"}}}},
     "'star' is written the same as a plural of 'circle'"),
    ({"classes": {"c": {"words": ["bus", "buses"], "nouns": True}}}, "'buses' is written the same as"),
    ({"classes": {"c": {"words": ["circle", "star"], "nouns": True, "plurals": {"disc": "discs"}}}},
     "plural of 'disc', which is neither"),
    ({"classes": {"c": {"words": [f"w{'a' * (i % 7)}{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}{chr(97 + i // 676)}"
                                  for i in range(5001)]}}}, "at most 5000 items"),
    ({"classes": {f"c{chr(97 + i % 26)}{chr(97 + i // 26)}": {"words": [f"x{chr(97 + i % 26)}{chr(97 + i // 26)}",
                                                                        f"y{chr(97 + i % 26)}{chr(97 + i // 26)}"]}
                  for i in range(65)}}, "at most 64 items"),
])
def test_a_bad_vocabulary_says_what_is_wrong(data, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        EditVocabulary.model_validate(data)


def test_plugins_provide_vocabularies_by_name():
    import curate_clip
    import curate_world

    manager = PluginManager(load_entry_points=False)
    manager.register(curate_clip, name="clip")
    manager.register(curate_world, name="world")
    known = available_vocabularies(manager)
    assert set(known) == {"world"}
    world = resolve_vocabulary("world", manager)
    assert world.classes["shape"].nouns and "violet" in world.classes["color"].synonyms
    inline = EditVocabulary.model_validate({"classes": {"c": {"words": ["red", "blue"]}}})
    assert resolve_vocabulary(inline, manager) is inline


def test_the_world_vocabulary_holds_every_word_the_world_writes():
    from curate_world.vocab import BACKGROUNDS, COLOR_SYNONYMS, COLORS, SHAPE_SYNONYMS, SHAPES, edit_vocabulary

    vocabulary = EditVocabulary.model_validate(edit_vocabulary())
    assert set(vocabulary.classes["color"].words) == {*COLORS, *BACKGROUNDS}
    assert vocabulary.classes["shape"].words == list(SHAPES)
    assert COLOR_SYNONYMS.items() <= vocabulary.classes["color"].synonyms.items()
    assert SHAPE_SYNONYMS.items() <= vocabulary.classes["shape"].synonyms.items()
    # and the forms its second language writes (tests/world/test_webstyle.py reads translations back)
    assert vocabulary.classes["color"].synonyms["rojas"] == "red" and vocabulary.classes["color"].synonyms["grauem"] == "gray"
    assert vocabulary.classes["shape"].synonyms["kreuz"] == "cross" and vocabulary.classes["shape"].plural("kreuz") == "kreuze"
    assert vocabulary.numbers["zwei"] == 2 and vocabulary.numbers["una"] == 1


KEPT = EditVocabulary.model_validate({**SMALL.model_dump(), "unedited_before": ["background"],
                                      "unedited_after": ["fondo"]})


def test_a_word_next_to_an_unedited_context_is_left_as_it_is():
    assert [e.text for e in minimal_edits("a red star on a blue background", KEPT)] == [
        "two red stars on a blue background", "three red stars on a blue background",
        "a green star on a blue background", "a blue star on a blue background",
        "a red circle on a blue background", "a red cross on a blue background"]
    assert minimal_edits("Blue  BACKGROUND", KEPT) == [] and minimal_edits("blue_background.jpg", KEPT) == []
    assert [e.text for e in minimal_edits("fondo azul, blue star", KEPT)][:1] == ["fondo azul, red star"]
    assert minimal_edits("fondo red", KEPT) == [] and minimal_edits("fondo - red", KEPT) == []
    # only right next to it: "blue backgrounds", "a blue and red background", "red, the background"
    assert len(minimal_edits("blue backgrounds", KEPT)) == 2
    assert [e.text for e in minimal_edits("a blue and red background", KEPT)] == [
        "a red and red background", "a green and red background"]
    assert len(minimal_edits("red, the background", KEPT)) == 2


@given(texts)
@settings(max_examples=200)
def test_unedited_contexts_only_take_edits_away(text):
    kept = {e.text for e in minimal_edits(text, KEPT)}
    assert kept <= {e.text for e in minimal_edits(text, SMALL)}
    for edit in minimal_edits(text, SMALL):
        if edit.text not in kept:  # the word it changed stood right before "background"
            at = next(i for i, (a, b) in enumerate(zip(text, edit.text)) if a != b)
            assert re.match(r"[^\W\d_]*[\s_-]+background(?![^\W_])", text[at:], re.IGNORECASE), (text, edit.text)


def test_a_run_of_gaps_is_read_in_linear_time():
    import time

    text = "red" + " " * 4000 + "x"
    start = time.perf_counter()
    for _ in range(100):
        minimal_edits(text, KEPT)
    assert time.perf_counter() - start < 5  # linear: ~0.04 s here; quadratic (a gap tried at each space): ~19 s


def test_the_world_leaves_a_background_colour_unedited():
    from curate_world.translate import translate
    from curate_world.vocab import edit_vocabulary

    world = EditVocabulary.model_validate(edit_vocabulary())
    english = "a red circle on a plain white background"
    for text in (english, translate(english, "es"), translate(english, "de")):
        read = reading(text, world)
        changed = {next(w for w, v in zip(read.split(), e.text.split()) if w != v).lower()
                   for e in minimal_edits(read, world)}
        assert "white" not in changed and "red" in changed, (text, changed)
    # A text that is its background alone, as a page or a word-for-word translation writes it, or
    # cut before the noun: the colour after a texture word or before "fondo" is the background's.
    background_only = ("Plain negro fondo", "striped verde fondo", "Striped whit", "Dotted pink b…", "GRADIENT BLUE")
    for text in background_only:
        assert minimal_edits(reading(text, world), world) == [], text
    assert minimal_edits(reading("a red star", world), world)  # an object's colour is still edited


CUT = EditVocabulary.model_validate({**SMALL.model_dump(), "fragments": True, "unedited_before": ["background"]})


@pytest.mark.parametrize("text, read", [
    ("a blue cir", "a blue circle"),
    ("TWO BLUE CIR…", "TWO BLUE CIRCLES…"),
    ("A BLUE CIR…", "A BLUE CIRCLE…"),
    ("a red circle on a blue back...", "a red circle on a blue background..."),
    ("two_blue_cro", "two_blue_crosses"),  # the noun's number follows the count
    ("a red star and three blue circ…", "a red star and three blue circles…"),
    ("a red circle and a gr", "a red circle and a green"),
    ("a red star and a crim", "a red star and a red"),  # a synonym's start: read as the synonym's word
    ("a blue squ", "a blue squ"),  # starts no word of the vocabulary
    ("a red star and a cr", "a red star and a cr"),  # crimson or cross
    ("a red circle and a c", "a red circle and a c"),  # one letter: too little to read
    ("a red circle or", "a red circle or"),  # a whole word, though it may start one
    ("a red circle and a blue ci now", "a red circle and a blue ci now"),  # only the last word is cut
])
def test_a_last_word_cut_short_is_read_as_the_one_word_it_starts(text, read):
    assert reading(text, CUT) == read
    assert reading(text, SMALL) == text  # off unless the vocabulary asks


def test_a_cut_that_starts_two_words_is_left_as_it_is():
    two = EditVocabulary.model_validate({"classes": {"color": {"words": ["green", "grey", "red"]}}, "fragments": True})
    assert reading("a gr", two) == "a gr" and reading("a gre", two) == "a gre" and reading("a gree", two) == "a green"


@given(texts, st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=0, max_size=6), st.sampled_from(["", "…", "..."]))
@settings(max_examples=300)
def test_completing_a_cut_only_ever_lengthens_the_last_word(text, cut, ellipsis):
    source = f"{text} {cut}{ellipsis}" if text else f"{cut}{ellipsis}"
    completed = reading(source, CUT)
    plain = reading(source, SMALL)
    head, _, last = plain.rstrip(".…").rpartition(" ")
    assert completed.startswith(head)
    assert completed.lower().removesuffix(ellipsis.lower()).rpartition(" ")[2].startswith(last.lower()) or \
        completed == plain


GLOSSED = EditVocabulary.model_validate({**SMALL.model_dump(), "glossary": {"und": "and", "kleiner": "small",
                                                                             "sobre": "on"}})


def test_glossary_words_are_read_as_their_english_and_never_edited():
    assert reading("ein kleiner red Star und ein blue circle", GLOSSED) == "ein small red Star and ein blue circle"
    assert reading("KLEINER STAR UND", GLOSSED) == "SMALL STAR AND"
    assert reading("kleinerx und_star", GLOSSED) == "kleinerx and_star"  # whole words only
    read = reading("ein kleiner red Star und ein blue circle", GLOSSED)
    for edit in minimal_edits(read, GLOSSED):
        assert "small" in edit.text and " and " in edit.text
    assert reading("ein kleiner red Star", SMALL) == "ein kleiner red Star"


@pytest.mark.parametrize("glossary, message", [
    ({"rot": "red"}, "glossary 'rot': 'red' is a word of class 'color': write 'rot' as a synonym there"),
    ({"crimson": "dark"}, "glossary 'crimson': 'crimson' is a word of class 'color'"),
    ({"two": "pair"}, "glossary word 'two' is a count: write it in numbers"),
    ({"Und": "and"}, "glossary 'Und': 'Und' is not a lower-case word"),
    ({"und": "and1"}, "glossary 'und': 'and1' is not a lower-case word"),
])
def test_a_bad_glossary_says_what_is_wrong(glossary, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        EditVocabulary.model_validate({**SMALL.model_dump(), "glossary": glossary})


def test_the_world_glossary_reads_its_second_languages_words():
    from curate_world.translate import translate
    from curate_world.vocab import edit_vocabulary

    world = EditVocabulary.model_validate(edit_vocabulary())
    english = "a small red circle and a large blue star on a plain white background"
    assert reading(translate(english, "de"), world).split()[:8] == [
        "one", "small", "red", "Circle", "and", "one", "large", "blue"]
    assert "and" in reading(translate(english, "es"), world).split()


def test_world_without_clip_registers_cleanly():
    import curate_world

    manager = PluginManager(load_entry_points=False)
    manager.register(curate_world, name="world")  # strict: an undeclared, non-optional hook would raise
    assert manager.unknown_hooks("world") == []


def test_underscores_and_hyphens_separate_words_as_in_file_names():
    edits = [e.text for e in minimal_edits("two_red_discs-final.jpg", SMALL)]
    assert "two_green_discs-final.jpg" in edits and "two_red_stars-final.jpg" in edits
    assert "a_red_disc-final.jpg" in edits  # the count keeps its separator
    assert minimal_edits("redstar", SMALL) == []  # inside a word is not a word


class FruitPlugin:
    @hookimpl
    def curate_clip_vocabularies(self):
        return {"fruit": {"classes": {"fruit": {"words": ["apple", "pear"], "nouns": True}}},
                "broken": {"classes": {"fruit": {"words": ["Apple", "pear"]}}}}


class SameNamePlugin:
    @hookimpl
    def curate_clip_vocabularies(self):
        return {"world": {"classes": {"color": {"words": ["red", "blue"]}}}}


class RaisingPlugin:
    @hookimpl
    def curate_clip_vocabularies(self):
        raise RuntimeError("no vocabulary today")


def _manager(*plugins):
    import curate_clip
    import curate_world

    manager = PluginManager(load_entry_points=False)
    manager.register(curate_clip, name="clip")
    manager.register(curate_world, name="world")
    for plugin in plugins:
        manager.register(plugin, name=type(plugin).__name__)
    return manager


def test_a_third_party_vocabulary_is_used_by_name_and_a_broken_one_is_a_plan_problem():
    manager = _manager(FruitPlugin())
    assert [e.text for e in minimal_edits("two apples", resolve_vocabulary("fruit", manager))] == \
        ["an apple", "three apples", "two pears"]
    assert vocabulary_problem("fruit", manager) is None
    problem = vocabulary_problem("broken", manager)
    assert problem.startswith("edits: vocabulary 'broken' from its plugin is invalid: classes.fruit.words")
    with pytest.raises(SpecError, match="unknown vocabulary 'frut'; known: broken, fruit, world"):
        resolve_vocabulary("frut", manager)


def test_two_plugins_giving_one_name_different_words_is_an_error_naming_both():
    with pytest.raises(PluginError, match="'world' is provided by both plugin 'world' and plugin 'SameNamePlugin'"):
        available_vocabularies(_manager(SameNamePlugin()))


def test_a_raising_vocabulary_hook_is_named_in_a_warning_and_skipped():
    from curate.plugins import PluginLoadWarning

    with pytest.warns(PluginLoadWarning, match="RaisingPlugin.*no vocabulary today"):
        known = available_vocabularies(_manager(RaisingPlugin()))
    assert set(known) == {"world"}


def _with_peak_memory(function):
    """``function()`` and the peak of the memory Python allocated while it ran."""
    import tracemalloc

    tracemalloc.start()
    try:
        return function(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_huge_text_builds_only_the_edits_it_may_keep():
    text = "red star " * 20_000  # 180 kB, 40,000 words with edits: all of them would be ~20 GB
    edits, peak = _with_peak_memory(lambda: minimal_edits(text, SMALL, limit=5))
    assert len(edits) == 5 and peak < 64 * 2**20


def test_a_big_class_builds_only_the_edits_it_may_keep():
    """Options are built lazily: 5,000 words a class and a 2,000-word text stay small."""
    words = [f"{a}{b}{c}" for a in "bcdfghjklmnpqrstvwxz" for b in "aeiouy" for c in "bcdfghjklmnpqrstvwxz"][:5000]
    vocabulary = EditVocabulary.model_validate({"classes": {"w": {"words": words}}})
    text = " ".join(words[i % len(words)] for i in range(2000))
    edits, peak = _with_peak_memory(lambda: minimal_edits(text, vocabulary, limit=64))
    assert len(edits) == 64 and peak < 32 * 2**20
    assert all(edit.text.split()[1:] == text.split()[1:] for edit in edits)  # all change the first word


def test_words_of_several_parts_match_however_they_are_joined():
    vocabulary = EditVocabulary.model_validate({"classes": {
        "top": {"words": ["t-shirt", "polo shirt", "hoodie"], "nouns": True},
        "color": {"words": ["navy blue", "red"]}}})
    edits = [e.text for e in minimal_edits("Two navy_blue T-Shirts", vocabulary)]
    assert edits == ["A navy_blue T-shirt", "Three navy_blue T-shirts", "Two red T-Shirts",
                     "Two navy_blue Polo shirts", "Two navy_blue Hoodies"]
    assert [e.text for e in minimal_edits("a red t shirt", vocabulary)] == \
        ["two red t-shirts", "three red t-shirts", "a navy blue t shirt", "a red polo shirt", "a red hoodie"]


def test_the_cli_lists_a_text_s_edits_with_their_class():
    from click.testing import CliRunner

    from curate_clip.cli import clip

    result = CliRunner().invoke(clip, ["edits", "Two red discs", "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["read as\tTwo red circles", "count\tA red circle", "count\tThree red circles",
                                          "color\tTwo beige circles"]
    result = CliRunner().invoke(clip, ["edits", "Two red circles", "--limit", "1"])
    assert result.output.splitlines() == ["count\tA red circle"]  # read as written: no 'read as' line
    result = CliRunner().invoke(clip, ["edits", "hello"])
    assert result.exit_code == 0 and "no edits" in result.output
    result = CliRunner().invoke(clip, ["edits", "x", "--vocabulary", "nope"])
    assert result.exit_code == 1 and "unknown vocabulary 'nope'; known: world" in result.output
    assert "Traceback" not in result.output
