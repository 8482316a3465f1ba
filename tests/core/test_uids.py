"""Derived uids: the md5 of each row's content, numbered in source order when the content repeats,
the same whichever way the repeats are numbered (hash set or window)."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import curate.ingest
import curate.uids
from curate.errors import SourceError
from curate.testing import run_spec
from curate.testing import strategies as cst
from curate.testing.runner import read_step_output
from curate.uids import Occurrences


def reference_uids(rows: list[tuple]) -> list[str]:
    """The uid rule written out: md5 of the columns as text (NULL as ''; \\x1e written \\x1e r and
    \\x1f written \\x1e u inside a value), joined by \\x1f, then \\x1e and one 0/1 per column for
    NULL; a repeat adds \\x1d and its occurrence number."""
    seen: Counter = Counter()
    out = []
    for row in rows:
        content = "\x1f".join("" if v is None else _escaped(str(v)) for v in row) + "\x1e"
        content += "".join("1" if v is None else "0" for v in row)
        seen[content] += 1
        if seen[content] > 1:
            content += f"\x1d{seen[content]}"
        out.append(hashlib.md5(content.encode()).hexdigest()[:16])
    return out


def _escaped(value: str) -> str:
    return value.replace("\x1e", "\x1er").replace("\x1f", "\x1eu")


def test_contents_that_join_to_one_text_get_two_uids(pm, workdir):
    """url "a<US>b" with alt-text "c" and url "a" with "b<US>c" were one text, one uid: a step dropping
    one of them lost the other's lineage (found by the column-types probe)."""
    table = pl.DataFrame({"url": ["http://e.com/a\x1fb", "http://e.com/a", "u\x1e0", "u"],
                          "alt_text": ["c", "b\x1fc", None, "\x1e1"]})
    manifest = run_spec({"source": {"path": "d.parquet"}}, workdir, tables={"d.parquet": table}, pm=pm)
    uids = read_step_output(manifest, "source")["uid"].to_list()
    assert len(set(uids)) == 4
    assert uids == reference_uids(list(table.iter_rows()))


separators = st.text(alphabet=st.sampled_from(["a", "b", "\x1d", "\x1e", "\x1f", "r", "u", "0", "1"]), max_size=6)


@settings(max_examples=200, deadline=None)
@example(first=("a\x1fb", "c"), second=("a", "b\x1fc"))
@example(first=("a\x1e0", None), second=("a", "\x1e1"))
@example(first=("a\x1eu", "b"), second=("a\x1f", "b"))
@given(first=st.tuples(st.none() | separators, st.none() | separators),
       second=st.tuples(st.none() | separators, st.none() | separators))
def test_the_uid_content_is_one_text_only_for_one_content(first, second):
    """Injective: the content texts of two rows are equal only when their values are."""
    import duckdb

    from curate.uids import Content

    con = duckdb.connect()
    frame = pl.DataFrame([first, second], schema={"url": pl.Utf8, "alt_text": pl.Utf8}, orient="row")
    texts = con.sql(f"SELECT {Content(('url', 'alt_text')).sql} AS t FROM frame").fetchall()
    assert (texts[0] == texts[1]) == (first == second)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tables=st.lists(cst.tables(min_rows=0, max_rows=30), min_size=1, max_size=3),
       shard_size=st.integers(1, 40), repeat_file=st.booleans())
def test_uids_follow_the_rule_by_hash_set_in_one_or_two_passes_and_by_window(
        pm, tmp_path_factory, monkeypatch, tables, shard_size, repeat_file):
    workdir = tmp_path_factory.mktemp("uids")
    tables = [t.drop("uid") for t in tables]
    if repeat_file:  # every row of a file repeated in a later one
        tables = [*tables, tables[0]]
    for i, table in enumerate(tables):
        table.write_parquet(workdir / "data" / f"part-{i}.parquet", mkdir=True)
    spec = {"source": {"path": str(workdir / "data")}, "run": {"shard_size": shard_size}}
    with monkeypatch.context() as patch:  # the repeated hashes by an aggregate, then the rows
        patch.setattr(curate.ingest, "_footer_rows", lambda files: None)
        by_hash_set = read_step_output(run_spec(spec, workdir / "hash_set", pm=pm), "source")
    with monkeypatch.context() as patch:  # the rows held, the repeated hashes found among them
        patch.setattr(curate.ingest, "_footer_rows", lambda files: 0)
        by_one_pass = read_step_output(run_spec(spec, workdir / "one_pass", pm=pm), "source")
    with monkeypatch.context() as patch:  # room for no repeated content: the window numbers them
        patch.setattr(curate.ingest, "BYTES_PER_REPEAT", 2**62)
        by_window = read_step_output(run_spec(spec, workdir / "window", pm=pm), "source")
    rows = [r for t in tables for r in t.select("url", "alt_text").iter_rows()]
    assert by_hash_set["uid"].to_list() == reference_uids(rows)
    assert by_one_pass.equals(by_hash_set)
    assert by_window.equals(by_hash_set)


def test_uid_columns_of_other_types_are_cast_as_duckdb_casts_them(pm, workdir):
    # Repeats of typed columns: the later uids come from the same SQL casts as the first ones.
    table = pl.DataFrame({"url": ["a", "a", "a", "b"], "alt_text": ["x", "x", "x", None],
                          "when": [datetime(2020, 1, 1)] * 4, "n": [1.5, 1.5, 1.5, None]})
    spec = {"source": {"path": "d.parquet", "uid_columns": ["url", "when", "n"]}}
    manifest = run_spec(spec, workdir, tables={"d.parquet": table}, pm=pm)
    uids = read_step_output(manifest, "source")["uid"].to_list()
    rows = [(u, "2020-01-01 00:00:00", None if n is None else str(n))
            for u, n in zip(table["url"], table["n"])]
    assert uids == reference_uids(rows) and len(set(uids)) == 4


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), max_size=60), data=st.data())
def test_occurrences_count_each_content_in_order_across_batches_and_hash_collisions(rows, data):
    """(hash, key) pairs: the same hash with another key is another content (a 64-bit collision)."""
    hashes = np.array([h for h, _ in rows], dtype=np.uint64)
    keys = np.array([k for _, k in rows], dtype=np.uint64)
    occurrences = Occurrences(np.unique(hashes))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(rows)), max_size=4)))
    numbers = []
    for start, end in zip([0, *cuts], [*cuts, len(rows)]):
        numbers.extend(occurrences.number(hashes[start:end], keys[start:end]).tolist())
    seen: Counter = Counter()
    expected = []
    for row in rows:
        seen[row] += 1
        expected.append(seen[row])
    assert numbers == expected


def test_occurrences_tell_which_hashes_repeat():
    occurrences = Occurrences(np.array([3, 9], dtype=np.uint64))
    found = occurrences.contains(np.array([9, 4, 3, 0, 10], dtype=np.uint64))
    assert found.tolist() == [True, False, True, False, False]
    nothing = Occurrences(np.zeros(0, dtype=np.uint64))
    assert nothing.contains(np.array([1], dtype=np.uint64)).tolist() == [False]


def test_memory_bytes_reads_duckdbs_rounded_limit():
    import duckdb

    from curate.duck import memory_bytes

    con = duckdb.connect()
    for setting, expected in (("256MB", 256e6), ("4GB", 4e9), ("1GiB", 2**30)):
        con.execute(f"SET memory_limit='{setting}'")
        assert abs(memory_bytes(con) - expected) / expected < 0.02  # one decimal: 3.7 GiB


@pytest.mark.parametrize("source", [
    {"path": "d.parquet"},  # read in place, its rows stored
    {"path": "d.csv", "format": "csv"},  # staged
    {"path": "d.parquet", "fuse": True},  # read in place, heading a group: only its uids stored
])
def test_two_contents_sharing_a_derived_uid_are_refused(pm, tmp_path, monkeypatch, source):
    """A derived uid is 64 bits of an md5, so past ~10^9 rows two contents share one: one row's
    lineage then stood for both. Shortened to 2 hex digits, 300 contents must share some."""
    monkeypatch.setattr(curate.uids, "UID_DIGITS", 2)
    monkeypatch.setattr(curate.uids, "CHECKED_FROM_ROWS", 0)
    table = pl.DataFrame({"url": [f"http://e.com/{i}" for i in range(300)], "alt_text": ["x"] * 300})
    table.write_csv(tmp_path / "d.csv")
    fuse = source.pop("fuse", False)
    spec = {"source": source, "steps": [{"step": "filter", "params": {"where": "true"}}],
            "run": {"report": False, "fuse_heads": fuse}}
    with pytest.raises(SourceError, match=r"rows of different content got one uid: '[0-9a-f]{2}' \(\d+ rows\)") as err:
        run_spec(spec, tmp_path, tables={"d.parquet": table}, pm=pm)
    assert "url, alt_text (source.uid_columns)" in str(err.value)
    assert "source.uid_columns" in err.value.hint


def test_derived_uids_of_repeated_contents_pass_the_check(pm, tmp_path, monkeypatch):
    monkeypatch.setattr(curate.uids, "CHECKED_FROM_ROWS", 0)
    table = pl.DataFrame({"url": ["http://e.com/a", "http://e.com/b"] * 50, "alt_text": ["x"] * 100})
    manifest = run_spec({"source": {"path": "d.parquet"}}, tmp_path, tables={"d.parquet": table}, pm=pm)
    uids = read_step_output(manifest, "source")["uid"].to_list()
    assert uids == reference_uids(list(table.iter_rows())) and len(set(uids)) == 100
