"""Properties of image_filter: it never adds rows or loses one, each verdict is what the thresholds
say of the size (checked against a rule written apart from the step's), the same whatever the
shards, the same for an image turned a quarter (every check is symmetric), and the same whether the
size comes from the download's columns or from the file's header."""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from curate.images import clear_cache
from curate.schema import DROP_REASON, Image
from curate.testing import run_step
from curate.testing import strategies as cst

THRESHOLDS = st.fixed_dictionaries({}, optional={
    "min_side": st.integers(0, 300),
    "max_aspect_ratio": st.one_of(st.none(), st.floats(1, 50)),
    "min_pixels": st.one_of(st.none(), st.integers(1, 100_000)),
}).filter(lambda p: p.get("min_side", 32) or p.get("max_aspect_ratio", 10) or p.get("min_pixels"))


def expected(size: tuple[int, int] | None, params: dict[str, Any]) -> str | None:
    """The verdict, from the README's rule: elongated, then small, then few pixels."""
    if size is None:
        return None
    shorter, longer = min(size), max(size)
    ratio = params.get("max_aspect_ratio", 10.0)
    if ratio is not None and shorter > 0 and Fraction(longer, shorter) > Fraction(ratio):  # exact
        return "image_too_elongated"
    if shorter < params.get("min_side", 32):
        return "image_too_small"
    if params.get("min_pixels") is not None and size[0] * size[1] < params["min_pixels"]:
        return "image_too_few_pixels"
    return None


@st.composite
def sized_tables(draw: Any) -> tuple[pl.DataFrame, list[tuple[int, int] | None]]:
    """A web table with the download's size columns (a row without an image has none)."""
    table = draw(cst.tables(max_rows=30))
    sizes = draw(st.lists(st.one_of(st.none(), cst.image_sizes()), min_size=table.height, max_size=table.height))
    return table.with_columns(
        pl.Series("original_width", [s and s[0] for s in sizes], dtype=pl.Int32),
        pl.Series("original_height", [s and s[1] for s in sizes], dtype=pl.Int32),
        pl.Series("image", [s and {"shard": "never-read", "key": uid} for s, uid in zip(sizes, table["uid"])],
                  dtype=Image),
    ), sizes


def verdicts(result: Any) -> dict[str, str | None]:
    dropped = dict(result.dropped.select("uid", DROP_REASON).iter_rows()) if result.dropped.height else {}
    return {**{uid: None for uid in result.kept["uid"]}, **dropped}


@settings(max_examples=50, deadline=None)
@given(sized_tables(), THRESHOLDS, cst.shard_sizes())
def test_each_row_is_kept_or_dropped_for_what_its_size_says(drawn, params, shard_size):
    table, sizes = drawn
    result = run_step("image_filter", table, params, shard_size=shard_size)
    assert result.kept.height + result.dropped.height == table.height
    assert result.kept["uid"].to_list() == [u for u in table["uid"] if u in set(result.kept["uid"])]  # order kept
    got = verdicts(result)
    assert got == {uid: expected(size, params) for uid, size in zip(table["uid"], sizes, strict=True)}
    assert result.kept.columns == table.columns  # nothing written


@settings(max_examples=40, deadline=None)
@given(sized_tables(), THRESHOLDS)
def test_an_image_turned_a_quarter_gets_the_same_verdict(drawn, params):
    table, _ = drawn
    turned = table.with_columns(original_width=pl.col("original_height"), original_height=pl.col("original_width"))
    assert verdicts(run_step("image_filter", table, params)) == verdicts(run_step("image_filter", turned, params))


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("L", size, 90).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(cst.image_sizes(max_side=3000, zero=False), min_size=1, max_size=12), THRESHOLDS)
def test_the_header_gives_the_verdict_the_columns_give(tmp_path_factory, sizes, params):
    folder = tmp_path_factory.mktemp("images")
    for index, size in enumerate(sizes):
        (folder / f"r{index}.png").write_bytes(png(size))
    clear_cache()
    uids = [f"r{index}" for index in range(len(sizes))]
    table = pl.DataFrame({
        "uid": uids,
        "original_width": pl.Series([w for w, _ in sizes], dtype=pl.Int32),
        "original_height": pl.Series([h for _, h in sizes], dtype=pl.Int32),
        "image": pl.Series([{"shard": str(folder), "key": uid} for uid in uids], dtype=Image),
    })
    by_header = run_step("image_filter", table, {**params, "sizes": "image"})
    by_columns = run_step("image_filter", table, {**params, "sizes": "columns"})
    assert verdicts(by_header) == verdicts(by_columns) == {u: expected(s, params) for u, s in zip(uids, sizes)}
    assert by_header.summary["sized_by"] == {"columns": 0, "image": len(sizes)}
