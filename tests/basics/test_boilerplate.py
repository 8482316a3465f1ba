from __future__ import annotations

import re

import polars as pl
import pytest
from curate_basics.boilerplate import StripBoilerplate, StripParams
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from curate.testing import run_step
from curate.testing import strategies as cst
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)
from tests.invariants import assert_nothing_lost, uids

EXAMPLES = [
    ("Stock Vector - A red circle on a white background. ID 959669720", "A red circle on a white background"),
    ("Orbitron Airlines, plain ivory background - Royalty Free Stock Image",
     "Orbitron Airlines, plain ivory background"),
    ("A Blue Hexagon And A Red Heart (Image4739.Png)", "A Blue Hexagon And A Red Heart"),
    ("two red circles | Stock Illustration ID 683718001", "two red circles"),
    ("a red circle", "a red circle"),
    ("Stock Photo", "Stock Photo"),  # no separator after it: a label only in front of a description
    ("Stock Photo - x - 123456789", "x"),
    ("stock image: a cat", "a cat"),
    ("Stock Footage \u2014 waves", "waves"),
    ("a cat stock photo 123456789", "a cat"),
    ("a cat - Stock Vector", "a cat"),
    ("a cat | Stock Photo", "a cat"),
    ("a cat ID 12345", "a cat"),
    ("a cat ID 1234", "a cat ID 1234"),  # ids have five digits or more
    ("a solid 12345", "a solid 12345"),
    ("route - 12345", "route - 12345"),  # a trailing id after a dash has six digits or more
    ("a (IMG_1234.jpg) b (DSC01234.JPG)", "a b"),
    ("(PXL_20240101.png) sunset", "sunset"),
    ("a photo (my holiday.jpg)", "a photo (my holiday.jpg)"),
    ("- a list item", "- a list item"),  # nothing removed, nothing trimmed
    ("a (IMG_1(IMG_2.jpg).jpg) b", "a b"),  # removing one file name uncovers the next
    ("x - 1234567 - 7654321 - Stock Image", "x"),
    # emoji and symbols after a stock label or id go with it; without one they stay
    ("A LARGE YELLOW TRIANGLE. ID 708048114 \U0001f525", "A LARGE YELLOW TRIANGLE"),
    ("two stars | Stock Illustration ID 405695219 \U0001f4af\u2728\u2b50", "two stars"),
    ("a red heart \u2764\ufe0f - Stock Photo \u2764\ufe0f", "a red heart \u2764\ufe0f"),
    ("a red heart \u2764\ufe0f \U0001f525", "a red heart \u2764\ufe0f \U0001f525"),
    ("", ""),
    (None, None),
]


def strip(texts: list[str | None], **params) -> list[str | None]:
    return StripBoilerplate(StripParams(**params)).strip(pl.Series(texts, dtype=pl.Utf8)).to_list()


def frame(texts: list[str | None]) -> pl.DataFrame:
    n = len(texts)
    return pl.DataFrame({"uid": [f"u{i:03}" for i in range(n)], "url": [f"https://a/{i}" for i in range(n)],
                         "alt_text": pl.Series(texts, dtype=pl.Utf8), "title": ["Stock Photo - t"] * n})


def test_the_examples(pm):
    texts, expected = zip(*EXAMPLES, strict=True)
    result = run_step("strip_boilerplate", frame(list(texts)), pm=pm, shard_size=7)
    assert result.kept["alt_text"].to_list() == list(expected)
    assert result.kept["title"].to_list() == ["Stock Photo - t"] * len(texts)  # not a column it strips


@pytest.mark.parametrize(("empty", "kept", "dropped"), [
    ("keep", ["Stock Photo - ", "a", None, ""], []),
    ("null", [None, "a", None, ""], []),
    ("drop", ["a", None, ""], ["Stock Photo - "]),  # the row dropped as it came, with its reason
])
def test_a_text_that_is_only_boilerplate_follows_empty(pm, empty, kept, dropped):
    table = frame(["Stock Photo - ", "a (IMG_1.jpg)", None, ""])
    result = run_step("strip_boilerplate", table, {"empty": empty}, pm=pm)
    assert_nothing_lost(table, result)
    assert result.kept["alt_text"].to_list() == kept
    assert (result.dropped["alt_text"].to_list() if result.dropped.height else []) == dropped
    assert set(result.drop_reasons) <= {"only_boilerplate"}


def test_several_columns_and_a_row_dropped_for_any_of_them(pm):
    table = frame(["a cat", "Stock Photo - "])
    result = run_step("strip_boilerplate", table, {"columns": ["alt_text", "title"], "empty": "drop"}, pm=pm)
    assert result.kept.row(0, named=True) == {"uid": "u000", "url": "https://a/0", "alt_text": "a cat",
                                              "title": "t"}
    assert uids(result.dropped) == ["u001"] and result.dropped["title"].to_list() == ["Stock Photo - t"]


BOILERPLATE = st.sampled_from([
    "Stock Photo - ", "Stock Vector: ", " - Royalty Free Stock Image", " | Stock Illustration ID 123456",
    " stock photo 123456789", ". ID 959669720", " ID 12345", " - 123456789", " (IMG_1234.jpg)",
    "(DSC01234.JPG)", " (image4739.png)", "(", ")", ".jpg", "IMG_1", " - ", " | ", ", ", ":", "  ", "\u2014",
    "photo", "click here", " 3 of 12", "thumbnail", "imag...", "\u2026", "\U0001f4af", "see_more", "png",
])
WORDS = st.sampled_from(["a", "red", "circle", "Stock", "photo", "ID", "royalty", "free", "image", "IMG", "hd", ", png",
                         ", red", " shapes", "…"])
PIECES = st.lists(st.one_of(BOILERPLATE, WORDS), max_size=10).map("".join)
TEXTS = st.one_of(st.none(), cst.alt_texts(), PIECES)
PARAMS = st.builds(StripParams, stock=st.booleans(), camera=st.booleans(), generic=st.booleans(), keywords=st.booleans(),
                   patterns=st.lists(st.sampled_from([r"(?i)\bred\b", r"\(", "ab", r"\s+"]), max_size=2))


@settings(max_examples=200)
@given(texts=st.lists(TEXTS, min_size=1, max_size=12), params=PARAMS)
@example(texts=[text for text, _ in EXAMPLES], params=StripParams())
@example(texts=["aaaabbbb", "a(b(c))"], params=StripParams(patterns=["ab", r"\([^()]*\)"]))
def test_stripping_twice_changes_nothing_more_and_never_lengthens(texts, params):
    step = StripBoilerplate(params)
    once = step.strip(pl.Series(texts, dtype=pl.Utf8))
    assert step.strip(once).to_list() == once.to_list()
    for before, after in zip(texts, once.to_list(), strict=True):
        assert (before is None) == (after is None)
        assert before is None or len(after) <= len(before)


@given(words=st.lists(st.text(st.characters(categories=["L"]), min_size=1, max_size=12), max_size=10))
@example(words=["Stock", "Photo", "ID", "Royalty", "Free", "Stock", "Image", "IMG"])
def test_plain_words_are_left_alone(words):
    text = " ".join(words)
    assert strip([text]) == [text]


@given(texts=st.lists(TEXTS, max_size=30), empty=st.sampled_from(["keep", "null", "drop"]))
def test_rows_uids_order_and_nulls_are_kept(pm, tmp_path, texts, empty):
    table = frame(texts)
    result = run_step("strip_boilerplate", table, {"empty": empty}, pm=pm, shard_size=7, workdir=tmp_path)
    assert_nothing_lost(table, result)
    if empty != "drop":
        assert uids(result.kept) == uids(table)
    by_uid = dict(zip(uids(table), texts, strict=True))
    for uid, text in zip(uids(result.kept), result.kept["alt_text"].to_list(), strict=True):
        if by_uid[uid] is None:
            assert text is None
    kept = table.filter(pl.col("uid").is_in(uids(result.kept)))
    assert result.kept["url"].to_list() == kept["url"].to_list()


def test_user_patterns_are_removed_wherever_they_match():
    patterns = [r"(?i)^click here", r" \(via [^)]*\)"]
    out = strip(["Click here: a red circle (via example.com)", "a cat"], patterns=patterns)
    assert out == ["a red circle", "a cat"]


def test_a_pathological_pattern_runs_in_linear_time():
    text = "a" * 200_000
    assert strip([text, "aab"], patterns=["(a*)*b"]) == [text, ""]


@pytest.mark.parametrize(("params", "message"), [
    ({"patterns": ["(unclosed"]}, "pattern '(unclosed' does not compile: unclosed group"),
    ({"patterns": ["(?=ahead)"]}, "pattern '(?=ahead)' does not compile: look-around"),
    ({"patterns": ["x{1000}{1000}{1000}"]}, "exceeds size limit"),
    ({"patterns": ["x"] * 65}, "at most 64"),
    ({"patterns": ["x" * 1001]}, "at most 1000"),
    ({"columns": ["alt_text", "uid"]}, "'uid' cannot be stripped"),
])
def test_bad_params_are_spec_errors(curate_main, write_spec, params, message):
    steps = [{"step": "strip_boilerplate", "params": params}]
    write_spec({"source": {"path": "data.parquet"}, "steps": steps}, table=frame(["a"]).drop("uid"))
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2 and "steps[0].params" in result.stderr and message in result.stderr, result
    assert "Traceback" not in result.stderr
    with pytest.raises(ValidationError, match=re.escape(message)):
        StripParams(**params)


def test_a_real_run_strips_and_curate_plugins_lists_it(curate_main, write_spec, workdir):
    table = frame([text for text, _ in EXAMPLES] + ["Stock Image - "]).drop("uid")
    steps = [{"step": "normalize_text"}, {"step": "strip_boilerplate", "params": {"empty": "drop"}}]
    outputs = [{"format": "parquet", "path": "out.parquet"}]
    write_spec({"name": "strip", "source": {"path": "data.parquet"}, "steps": steps, "outputs": outputs,
                "run": {"dir": "run"}}, table=table)
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 0, result
    out = pl.read_parquet(workdir / "run" / "out.parquet")
    assert out["alt_text"].to_list() == [expected for _, expected in EXAMPLES]
    funnel = curate_main("inspect", "run", "--json").json()["steps"][-1]
    assert funnel["step"] == "strip_boilerplate" and funnel["dropped"] == {"only_boilerplate": 1}, funnel
    listed = curate_main("plugins")
    assert "step     strip_boilerplate: remove stock-site labels" in listed.stdout


def nested(depth: int) -> str:
    inner = "(IMG_0.jpg)"
    for level in range(1, depth):
        inner = f"(IMG_{level}{inner}.jpg)"
    return f"a {inner} b"


def test_a_text_still_changing_after_the_rounds_stays_as_it_came():
    # Each round uncovers one more file name; four rounds finish, a fifth would be needed here.
    assert strip([nested(4), nested(5)]) == ["a b", nested(5)]
    assert strip([nested(5)], camera=False) == [nested(5)]


# -- generic: a text that says nothing about its image, as a whole ------------------------------
GENERIC_EXAMPLES = [
    ("photo", ""), ("IMAGE", ""), ("IMG_0001.jpg", ""), ("DSC01234.JPG", ""), ("1234.jpg", ""),
    ("click here \u2b50\U0001f525", ""), ("photo 3 of 12", ""), ("Download now", ""), ("\"untitled & more\"", ""),
    ("no description available", ""), ("see_more.jpg", ""), ("Thumbnail | PNG | HD | Free", ""),
    ("imag...", ""), ("see m\u2026", ""), ("image-cop", ""),  # cut short: before an ellipsis, or after a generic word
    ("Stock Photo - placeholder", ""),  # the stock label goes first, then the rest is generic
    ("a photo of a red circle", "a photo of a red circle"), ("Photo of Zorblax Tower", "Photo of Zorblax Tower"),
    ("red", "red"), ("p\u2026", "p\u2026"), ("Zoo", "Zoo"), ("Space", "Space"), ("Pho", "Pho"),  # words of their own
    ("photography", "photography"), ("here and there", "here and there"), ("3 of 12 red circles", "3 of 12 red circles"),
    ("red-circle-min.jpg", "red-circle-min.jpg"), ("", ""), (None, None),
]


def test_generic_texts_are_emptied_and_descriptions_kept():
    texts, expected = zip(*GENERIC_EXAMPLES, strict=True)
    assert strip(list(texts), generic=True) == list(expected)
    assert strip(["photo", "click here"]) == ["photo", "click here"]  # off by default


def test_generic_texts_follow_empty_with_their_reason(pm):
    table = frame(["thumbnail", "a red circle", "IMG_0042.JPG"])
    result = run_step("strip_boilerplate", table, {"generic": True, "empty": "drop"}, pm=pm)
    assert_nothing_lost(table, result)
    assert result.kept["alt_text"].to_list() == ["a red circle"]
    assert result.dropped["alt_text"].to_list() == ["thumbnail", "IMG_0042.JPG"]  # as they came
    assert set(result.drop_reasons) == {"only_boilerplate"}


GENERIC_PIECES = st.sampled_from(["photo", "image", "click here", "thumbnail", "IMG_12.jpg", "3 of 4", "png",
                                  "untitled", "see more", "Download"])
FILL = st.sampled_from([" ", ", ", " | ", " - ", "\U0001f525", "...", "\u2026", "'", " 2024 "])


@settings(max_examples=200)
@given(pieces=st.lists(st.tuples(GENERIC_PIECES, FILL), min_size=1, max_size=6),
       word=st.text(st.characters(categories=["L"]), min_size=1, max_size=8), at=st.integers(0, 6))
def test_only_generic_words_are_emptied_and_one_other_word_keeps_the_text(pieces, word, at):
    generic = "".join(piece + fill for piece, fill in pieces)
    assert strip([generic], generic=True) == [""]
    from curate_basics.boilerplate import GENERIC_WORDS

    if any(w.startswith(word.lower()) or word.lower() in w.split() for w in GENERIC_WORDS) or word.lower() == "of":
        return  # a generic word itself, a word of one, or one cut short
    parts = [piece + fill for piece, fill in pieces]
    parts.insert(min(at, len(parts)), f" {word} ")
    text = "".join(parts)
    assert strip([text], generic=True) == [text]


def test_the_generic_pattern_is_the_same_in_every_process():
    """Its equal-length alternatives came in a set's order, which changes with the hash seed."""
    import os
    import subprocess
    import sys

    code = "from curate_basics.boilerplate import GENERIC; print(GENERIC)"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2", "3")}
    assert len(runs) == 1
