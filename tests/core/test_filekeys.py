"""A uid as a file name (curate.filekeys): curate's own uids stay as they are; any other string
becomes a short, safe name that no other uid shares, also where case does not count."""

from __future__ import annotations

import re
import unicodedata

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from curate.filekeys import file_key, file_keys, inside

SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_~-]{0,79}")
HOSTILE = ["../../escape", "/etc/cron.d/x", "a/b", "a\\b", "x.y", ".", "..", "", "Case", "nul\x00byte",
           "ctl\x1b[31m\x07", "L" * 300, "caf\u00e9", unicodedata.normalize("NFD", "caf\u00e9"), "-rf",
           "abc\n", "con", "~", " lead", "a" * 81]


def test_curate_uids_are_their_own_file_names():
    uids = ["0123456789abcdef", "ffffffffffffffff", "000000123", "laion_12-3"]
    assert [file_key(u) for u in uids] == uids
    series = pl.Series("uid", uids)
    assert file_keys(series) is series  # the usual column costs no Python loop


def test_hostile_uids_become_safe_distinct_names():
    keys = [file_key(u) for u in HOSTILE]
    for uid, key in zip(HOSTILE, keys, strict=True):
        assert SAFE.fullmatch(key), (uid, key)
        assert len(f"{key}.webp".encode()) <= 100  # a USTAR member name, as the store writes them
    assert len({k.casefold() for k in keys}) == len(HOSTILE)
    assert file_key("Case") != file_key("case") and file_key("x.y") != file_key("x_y")
    assert file_keys(pl.Series("uid", [*HOSTILE, None])).to_list() == [*keys, None]


@given(st.lists(st.text(max_size=120), unique=True, max_size=30))
def test_file_keys_are_safe_and_unique_regardless_of_case(uids):
    keys = [file_key(u) for u in uids]
    assert all(SAFE.fullmatch(k) for k in keys)
    assert len({k.casefold() for k in keys}) == len(uids)
    assert file_keys(pl.Series("uid", uids, dtype=pl.Utf8)).to_list() == keys


def test_inside_accepts_only_relative_names_that_stay_in_their_folder():
    assert all(inside(n) for n in ["00000.tar", "images/ab~1.jpg", "_CURATE_EXPORT.json", "a..b"])
    assert not any(inside(n) for n in ["../x", "a/../../x", "/etc/x", "a//b", "./a", "a/", "", "a\\..\\b",
                                        "a\x00b", None, 3, ["a"]])
