"""CONTRIBUTING.md's plugin example and its property test run as printed: a plugin author copies
them first, so they are checked like code (the word count once counted an empty alt-text as a word)."""

from __future__ import annotations

import re
import types

import polars as pl
from hypothesis import given, settings

from curate.testing import run_step
from curate.testing import strategies as cst
from tests.conftest import REPO

BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "CONTRIBUTING.md").read_text(), flags=re.S)
PLUGIN = next(block for block in BLOCKS if "class LongEnough(Step)" in block)


def long_enough_plugin() -> types.ModuleType:
    module = types.ModuleType("my_plugin")
    exec(compile(PLUGIN, "CONTRIBUTING.md", "exec"), module.__dict__)  # noqa: S102 - the repository's own doc
    return module


def test_the_example_step_counts_words_as_a_reader_would(pm, register_plugin):
    register_plugin(long_enough_plugin(), "my_plugin")
    table = pl.DataFrame({"uid": ["a", "b", "c", "d", "e"], "url": ["u"] * 5,
                          "alt_text": ["", None, "a  b", " x", "one two three"]})
    result = run_step("long_enough", table, {"min_words": 1}, pm=pm)
    assert sorted(result.kept["uid"]) == ["c", "d", "e"]
    assert dict(zip(result.kept["uid"], result.kept["alt_text_words"], strict=True)) == {"c": 2, "d": 1, "e": 3}
    assert sorted(result.dropped["uid"]) == ["a", "b"] and set(result.dropped["_drop_reason"]) == {"too_few_words"}


def test_the_documented_property_holds(pm, register_plugin):
    register_plugin(long_enough_plugin(), "my_plugin")

    @settings(max_examples=30, deadline=None)
    @given(cst.tables())
    def test_long_enough_never_adds_rows(table):
        result = run_step("long_enough", table, {"min_words": 2}, shard_size=7, pm=pm)
        assert set(result.kept["uid"]) <= set(table["uid"])
        assert result.kept.height + result.dropped.height == table.height

    test_long_enough_never_adds_rows()
