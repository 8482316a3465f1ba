"""A lone surrogate escape in a JSON Lines source ("\\ud800": half of a UTF-16 pair, no character)
is refused naming the file, line, column and text: Polars read a lone high half as "\\x00"
without a word, and failed on a lone low half without saying where."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import curate_basics.jsonsurrogates
import curate_basics.sources
from curate.errors import CurateError, SourceError
from curate.testing import run_spec
from curate.testing.runner import read_step_output
from curate_basics.jsonsurrogates import LoneSurrogates
from tests.basics.jsonblocks import first_found

ROWS = [json.dumps({"url": f"http://a/{i}.jpg", "alt_text": f"t{i}"}) for i in range(20)]


def _jsonl(path, rows: list[str]) -> None:
    path.write_bytes("".join(row + "\n" for row in rows).encode("utf-8", "surrogatepass"))


X = '{"url": "http://a/x.jpg", "alt_text"'


@pytest.mark.parametrize("row, said", [
    (X + ': "a\\ud800b"}', "column 41: \\ud800 in the value of 'alt_text'"),  # read as "a\x00b"
    (X + ': "a\\uDC00b"}', "column 41: \\uDC00 in the value of 'alt_text'"),
    (X + ': "a\\udc00\\ud800"}', "column 41: \\udc00 in the value of 'alt_text'"),  # the other order
    (X + ': "\\ud83d\\ud83d\\ude00"}', "column 40: \\ud83d in the value of"),  # then a pair
    ('{"url": "http://a/\\\\\\udbff.jpg", "alt_text": "x"}', "column 21: \\udbff in the value of 'url'"),
    (X + ': "x", "k\\ud800": 1}', "column 46: \\ud800 in the key 'k\\ud800'"),
    (X + ': "x", "m": {"a": "\\ud800"}}', "column 56: \\ud800 in the text at $.m.a"),
    (X + ': "x", "l": ["\\ud83d\\ude00", "\\udfff"]}', "column 67: \\udfff in the text at $.l[1]"),
])
def test_a_lone_surrogate_escape_is_refused(pm, workdir, row, said):
    _jsonl(workdir / "d.jsonl", [*ROWS, row, *ROWS])
    with pytest.raises(CurateError) as caught:  # at validation: the line is within the scan
        run_spec({"source": {"path": "d.jsonl"}}, workdir, pm=pm)
    assert f"d.jsonl as jsonl, line 21, {said}" in str(caught.value)
    assert "half of a UTF-16 surrogate pair, alone" in str(caught.value)
    assert "\\uD800-\\uDBFF must be followed by \\uDC00-\\uDFFF" in str(caught.value)


def test_a_lone_surrogate_escape_past_the_scan_is_refused(pm, workdir, monkeypatch):
    monkeypatch.setattr(curate_basics.sources, "JSONL_SCAN_LIMIT", 2_000)
    rows = [json.dumps({"url": f"http://a/{i}.jpg", "alt_text": f"t{i} \U0001f600"}) for i in range(1000)]
    _jsonl(workdir / "d.jsonl", [*rows, '{"url": "http://a/x.jpg", "alt_text": "cut \\ud83d"}', *rows[:5]])
    with pytest.raises(SourceError, match=r"line 1001, column 44: \\ud83d in the value of 'alt_text'"):
        run_spec({"source": {"path": "d.jsonl"}}, workdir, pm=pm)


def _escaped(draw, char: str) -> str:
    """``char`` as a JSON string may write it: as it is (where JSON allows; half a pair as the
    bytes UTF-8 would give it, which are no UTF-8), or as \\uXXXX (a character past U+FFFF as its
    two halves), hex digits in either case."""
    code = ord(char)
    high, low = divmod(code - 0x10000, 0x400)
    halves = [code] if code < 0x10000 else [0xD800 + high, 0xDC00 + low]
    escape = "".join(f"\\u{half:04x}" for half in halves)
    forms = [escape, escape.upper().replace("\\U", "\\u")]
    if char == '"' or char == "\\":
        forms.append("\\" + char)
    elif code >= 0x20:
        forms.append(char)
    return draw(st.sampled_from(forms))


# Text of any code points, halves of surrogate pairs alone among them, and backslashes.
TEXT = st.text(st.one_of(st.characters(codec=None), st.integers(0xD800, 0xDFFF).map(chr), st.just("\\")),
               max_size=8)


@st.composite
def json_text(draw) -> str:
    """A JSON string writing a text."""
    return '"' + "".join(_escaped(draw, char) for char in draw(TEXT)) + '"'


def _holds_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(char) <= 0xDFFF for char in text)


def _strict(line: bytes) -> str | None:
    """The text ``line`` (a JSON string) writes, read as Python's json reads strict UTF-8; None
    where that is no Unicode text (bytes that are not UTF-8, half a pair alone)."""
    try:
        text = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return None
    return None if _holds_surrogate(text) else text


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(written=st.lists(json_text(), min_size=1, max_size=4))
@example(written=['"a\\ud83d\\ude00b"', '"\\\\ud800"', '"\\uD83D\\uDE00"'])
@example(written=['"x"', '"a\\ud800b"'])
@example(written=['"\\udc00\\ud800"'])
@example(written=['"\\ud800\\udc00"', '"\\\\\\ud800"'])
@example(written=['"a\udfff"'])  # written as the bytes ED BF BF
@example(written=['"\ud800\\u0030"', '"\\ud800"'])  # the line before is not UTF-8: it is said
def test_a_text_is_read_as_written_or_refused_at_its_line(pm, tmp_path_factory, written):
    """Never changed: every text reads back as Python's json reads it from strict UTF-8, or the
    first line that is no Unicode text (half a pair alone, escaped or not) is refused by its number."""
    workdir = tmp_path_factory.mktemp("surrogates")
    _jsonl(workdir / "d.jsonl", [*ROWS[:3], *(f'{{"url": "http://a/{i}.jpg", "alt_text": {text}}}'
                                             for i, text in enumerate(written))])
    expected = [_strict(text.encode("utf-8", "surrogatepass")) for text in written]
    if None in expected:
        with pytest.raises(CurateError) as caught:
            run_spec({"source": {"path": "d.jsonl"}}, workdir, pm=pm)
        line = 4 + expected.index(None)
        assert re.search(rf"d\.jsonl as jsonl, line {line}, column \d+: ", str(caught.value)), caught.value
        return
    manifest = run_spec({"source": {"path": "d.jsonl"}}, workdir, pm=pm)
    assert read_step_output(manifest, "source")["alt_text"].to_list() == ["t0", "t1", "t2", *expected]


def _first_lone(path, block: int, shared: bool) -> tuple[int, int, str] | None:
    """(line, column, escape) ``LoneSurrogates`` says, handed the file's lines ``block`` at a time
    (``shared``: with their bytes, as ``curate_basics.locate`` hands them)."""
    found = first_found(path, LoneSurrogates, block, shared,  # a line read as the scans read it:
                        load=lambda raw: json.loads(raw.decode("utf-8", "replace")))
    return None if found is None else (found[0], found[1].column, found[1].escape)


def _lone_in(line: str) -> tuple[int, str]:
    """(column, escape) of the first lone surrogate escape in ``line``, read a character at a time
    as a JSON string is (a high half and a low half right after it are one character)."""
    at = 0
    while (at := line.find("\\", at)) >= 0:
        if line[at + 1] != "u":
            at += 2
            continue
        code, after = int(line[at + 2:at + 6], 16), line[at + 6:at + 12]
        if 0xD800 <= code <= 0xDBFF and after[:2] == "\\u" and 0xDC00 <= int(after[2:], 16) <= 0xDFFF:
            at += 12
        elif 0xD800 <= code <= 0xDFFF:
            return at + 1, line[at:at + 6]
        else:
            at += 6
    raise AssertionError(f"no lone surrogate escape in {line!r}")


LINE = st.one_of(st.lists(json_text(), max_size=3).map(lambda texts: "{" + ", ".join(
    f'"k{i}": {text}' for i, text in enumerate(texts)) + "}"), st.just('"\\ud800"'), st.just("not json"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, min_size=1, max_size=20), block=st.integers(1, 8), chunk=st.integers(1, 200),
       final_newline=st.booleans(), shared=st.booleans())
@example(lines=['{"k": "\\\\\\ud800\\udc00 \\ud800"}'], block=1, chunk=200, final_newline=True, shared=False)
@example(lines=['{"k": "\\\\ud800\\udc00"}'], block=1, chunk=200, final_newline=True, shared=False)
@example(lines=['{"k": "\\udbff\\udbff\\udc00"}', '{"k": "\\ud800"}'], block=2, chunk=3, final_newline=False,
         shared=True)
def test_the_line_holding_half_a_pair_alone_is_said_whatever_the_blocks(tmp_path, monkeypatch, lines, block,
                                                                         chunk, final_newline, shared):
    """The bytes' search agrees with what ``json`` reads: a line is said exactly when a text it
    parses to (a JSON object) holds a surrogate, with its first lone escape, whatever the blocks
    and the pieces read."""
    monkeypatch.setattr(curate_basics.jsonsurrogates, "CHUNK", chunk)
    expected = None
    for number, line in enumerate(lines, start=1):
        read = line.encode("utf-8", "surrogatepass").decode("utf-8", "replace")  # as the scans read it
        value = json.loads(read) if line != "not json" else None
        if isinstance(value, dict) and any(_holds_surrogate(text) for text in value.values()):
            expected = (number, *_lone_in(read))
            break
    text = "\n".join(lines) + ("\n" if final_newline else "")
    (tmp_path / "d.jsonl").write_bytes(text.encode("utf-8", "surrogatepass"))
    assert _first_lone(tmp_path / "d.jsonl", block, shared) == expected
