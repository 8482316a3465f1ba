"""A JSON Lines object holding a key twice is refused naming the file, line and key (Polars kept
the first url and dropped the second without a word)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import curate_basics.jsonkeys
import curate_basics.sources
from curate.errors import CurateError, SourceError
from curate.testing import run_spec
from curate_basics.jsonkeys import RepeatedKeys, _key_colons, repeated_key
from tests.basics.jsonblocks import first_found


def _pairs_written(text: str) -> tuple[int, bool]:
    """(keys written, whether an object holds one twice), as ``json`` reads every pair."""
    written, repeated = 0, False

    def hook(pairs: list) -> dict:
        nonlocal written, repeated
        written += len(pairs)
        repeated = repeated or len({key for key, _ in pairs}) < len(pairs)
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return written, repeated


# Keys and text of the characters a count of quotes could be fooled by: quotes, backslashes,
# colons, whitespace; few enough keys that they repeat.
tricky = st.text(st.sampled_from('ab"\\: \t/é\u2028'), max_size=4)
space = st.sampled_from(["", " ", "\t", "\r", "  "])


@st.composite
def encoded(draw, text: str) -> str:
    """``text`` as a JSON string, each character written plainly or escaped (``\\u0072`` is r)."""
    out = []
    for char in text:
        short = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\t": "\\t"}
        forms = [f"\\u{ord(char):04x}"] + ([short[char]] if char in short else [])
        if char not in '"\\\t':
            forms.append(char)
        out.append(draw(st.sampled_from(forms)))
    return '"' + "".join(out) + '"'


@st.composite
def json_value(draw, depth: int = 0) -> str:
    kinds = ["number", "text", "null"] + (["object", "list"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "number":
        return str(draw(st.integers(-3, 3)))
    if kind == "null":
        return "null"
    if kind == "text":
        return draw(encoded(draw(st.one_of(tricky, st.sampled_from(['": ', '"a":', '\\": 1, "a": '])))))
    if kind == "list":
        items = draw(st.lists(json_value(depth + 1), max_size=3))
        return "[" + ",".join(draw(space) + item + draw(space) for item in items) + "]"
    return draw(json_object(depth + 1))


@st.composite
def json_object(draw, depth: int = 0) -> str:
    pairs = draw(st.lists(st.tuples(tricky, json_value(depth)), max_size=4))
    written = [draw(space) + draw(encoded(key)) + draw(space) + ":" + draw(space) + value + draw(space)
               for key, value in pairs]
    return "{" + ",".join(written) + draw(space) + "}"


def first_repeat(path, block: int, shared: bool = False) -> tuple[int, object] | None:
    """What ``RepeatedKeys`` says of a file read as the scans read it, checked every ``block`` lines
    (``shared``: handed each block's bytes, as ``curate_basics.locate`` hands them)."""
    return first_found(path, RepeatedKeys, block, shared)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=json_object())
@example(line='{"url": "a", "u\\u0072l": "b"}')
@example(line='{"a\\\\" : 1, "a\\\\"\t:2}')
@example(line='{"m": [{"k": "x \\" y", "k": 2}]}')
@example(line='{"a":"\\":","a":1}')
@example(line='{"a\\\\":1,"a\\\\":2}')
def test_a_repeated_key_is_found_as_json_reads_every_pair(tmp_path, line):
    written, repeated = _pairs_written(line)
    raw = line.encode()
    # the count the blocks are settled by is never short of the keys written: none is missed
    assert len(_key_colons(np.frombuffer(raw, dtype=np.uint8), 0)) >= written
    found = repeated_key(raw)
    assert (found is not None) == repeated
    (tmp_path / "d.jsonl").write_bytes(raw + b"\n")
    assert first_repeat(tmp_path / "d.jsonl", 1) == (None if found is None else (1, found))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(json_object(), st.just("not json"), st.just('{"url": "a", "alt": "b"}')),
                      min_size=1, max_size=30),
       block=st.integers(1, 12), chunk=st.integers(1, 300), final_newline=st.booleans(), shared=st.booleans())
def test_the_first_line_with_a_repeated_key_is_said_whatever_the_blocks(tmp_path, monkeypatch, lines, block,
                                                                         chunk, final_newline, shared):
    monkeypatch.setattr(curate_basics.jsonkeys, "CHUNK", chunk)
    expected = next(((number, repeated_key(line.encode())) for number, line in enumerate(lines, start=1)
                     if line != "not json" and _pairs_written(line)[1]), None)
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + ("\n" if final_newline else ""))
    assert first_repeat(tmp_path / "d.jsonl", block, shared) == expected


def _jsonl(path, rows: list[str]) -> None:
    path.write_text("".join(row + "\n" for row in rows))


ROWS = [json.dumps({"url": f"http://a/{i}.jpg", "alt_text": f"t{i}"}) for i in range(20)]


@pytest.mark.parametrize("row, said", [
    ('{"url": "http://a/1.jpg", "alt_text": "x", "url": "http://evil/2.jpg"}',
     """line 21: key 'url' appears twice: "http://a/1.jpg", then "http://evil/2.jpg\""""),
    ('{"url": "http://a/1.jpg", "alt_text": "x", "u\\u0072l": "http://evil/2.jpg"}',
     """line 21: key 'url' appears twice: "http://a/1.jpg", then "http://evil/2.jpg\""""),
    ('{"url": "http://a/1.jpg", "alt_text": "x", "meta": {"w": 1, "w": 2}}',
     "line 21: key 'w' appears twice in the object at $.meta: 1, then 2"),
])
def test_a_jsonl_line_with_a_repeated_key_is_refused(pm, workdir, row, said):
    """Polars read the first url and dropped the second (and the nested w) without a word."""
    _jsonl(workdir / "d.jsonl", [*ROWS, row, *ROWS])
    with pytest.raises(CurateError) as caught:  # at validation: the line is within the scan
        run_spec({"source": {"path": "d.jsonl"}}, workdir, pm=pm)
    assert f"d.jsonl as jsonl, {said}" in str(caught.value)
    assert "remove one of the two from that line" in str(caught.value)


def test_a_repeated_key_past_the_scan_is_refused(pm, workdir, monkeypatch):
    monkeypatch.setattr(curate_basics.sources, "JSONL_SCAN_LIMIT", 2_000)
    rows = [json.dumps({"url": f"http://a/{i}.jpg", "alt_text": f"t{i}"}) for i in range(1000)]
    _jsonl(workdir / "d.jsonl", [*rows, '{"url": "u", "alt_text": "t", "alt_text": "other"}'])
    with pytest.raises(SourceError, match="line 1001: key 'alt_text' appears twice") as caught:
        run_spec({"source": {"path": "d.jsonl"}}, workdir, pm=pm)
    assert "remove one of the two" in caught.value.hint
