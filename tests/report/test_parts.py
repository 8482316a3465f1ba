"""The small pieces: escaping, chart labels, thumbnails."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from curate_report import charts
from curate_report.html import Html, clip_text, esc, slug, table, tag, thumb
from curate_report.images import jpeg_thumbnail, thumbnail
from hypothesis import given
from hypothesis import strategies as st

from tests.report.checks import assert_well_formed
from tests.report.conftest import image_bytes, write_shard


@given(st.text())
def test_escaped_text_never_makes_markup(text: str):
    page = f"<!DOCTYPE html><html><body>{table(['h'], [[text]])}{tag('p', text, title=text)}</body></html>"
    structure = assert_well_formed(page)
    assert structure.tags.get("td") == 1 and structure.tags.get("p") == 1
    assert "<" not in esc(text) and ">" not in esc(text)


@given(st.text(alphabet=st.sampled_from("ab \t\n\x1c\u2028\u00a0\u3000x"), max_size=60), st.integers(1, 20))
def test_clip_text_collapses_whitespace_and_cuts(text: str, limit: int):
    value = " ".join(text.split())
    assert clip_text(text, limit) == (value if len(value) <= limit else value[: limit - 1] + "…")


def test_clip_text_of_a_huge_text_reads_only_what_shows():
    import tracemalloc

    huge = "a " * 10_000_000
    tracemalloc.start()
    try:
        assert clip_text(huge, 9) == "a a a a …"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # splitting all of it held 10 million strings


def test_html_is_not_escaped_twice():
    assert esc(Html("<b>x</b>")) == "<b>x</b>"
    assert tag("td", Html("<b>x</b>")) == "<td><b>x</b></td>"
    assert tag("td", "<b>") == "<td>&lt;b&gt;</td>"


def test_slugs_are_unique():
    taken: set[str] = set()
    assert [slug(t, taken) for t in ("Funnel", "funnel", "Ünïcode!", "")] == ["funnel", "funnel-2", "n-code", "section"]


@given(st.text())
def test_chart_labels_are_printable_and_never_mathtext(text: str):
    label = charts.short(text, 20)
    assert all(ch.isprintable() for ch in label)
    assert "$" not in label.replace(r"\$", "")


def test_a_dollar_label_draws():
    img = charts.chart(lambda figure: figure.subplots().barh([0], [1], label=charts.short("$x$ \\frac{")),
                       alt="dollars")
    assert img.startswith('<img class="chart"')


def test_axis_numbers_are_short():
    assert [charts.thousands(v) for v in (0, 950, 1200, 3_400_000, 2e9)] == ["0", "950", "1.2k", "3.4M", "2G"]


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L", "CMYK"])
def test_thumbnails_are_small_jpegs_in_any_mode(mode: str):
    from PIL import Image

    buffer = io.BytesIO()
    picture = Image.new(mode, (640, 320))
    picture.save(buffer, format="PNG" if mode != "CMYK" else "JPEG")
    uri = jpeg_thumbnail(buffer.getvalue())
    assert uri is not None and uri.startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert decoded.size == (96, 48)


def test_no_thumbnail_for_what_is_not_there(tmp_path: Path):
    write_shard(tmp_path / "images" / "00000.tar", 3)
    assert thumbnail({"shard": "images/00000.tar", "key": "000002"}, tmp_path, [tmp_path]) is not None
    assert thumbnail({"shard": "images/00000.tar", "key": "000009"}, tmp_path, [tmp_path]) is None  # key not in shard
    assert thumbnail({"shard": "images/missing.tar", "key": "000001"}, tmp_path, [tmp_path]) is None
    assert thumbnail(None, tmp_path, [tmp_path]) is None
    assert thumbnail({"shard": None, "key": None}, tmp_path, [tmp_path]) is None
    assert jpeg_thumbnail(image_bytes(1)[:200]) is None  # truncated
    assert jpeg_thumbnail(b"not an image") is None


def test_a_missing_thumbnail_is_a_placeholder_of_the_same_size():
    assert "no image" in thumb(None, "x")
    assert thumb("data:image/jpeg;base64,AAAA", "<alt>") == \
        '<img class="thumb" src="data:image/jpeg;base64,AAAA" alt="&lt;alt&gt;">'
