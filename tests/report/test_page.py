"""The page: sections from every plugin in order, well-formed, self-contained, deterministic;
written at the end of a run unless the spec says not to, and never the reason a run fails."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from xml.etree import ElementTree

import curate_report
import polars as pl
import pytest
from curate_report.page import REPORT, collect_sections, write_report
from curate_report.sections import ReportWarning
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import hookimpl
from curate.cli import main
from curate.runstore import read_manifest
from curate.testing import run_spec
from curate.testing import strategies as cst
from tests.report.checks import assert_self_contained, assert_well_formed
from tests.report.conftest import GENERIC_SPEC

SVG = re.compile(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"')


def sections_of(page: str) -> list[str]:
    return re.findall(r'<section class="panel" id="[^"]+"><h2>([^<]*)</h2>', page)


def assert_charts_are_valid_svg(page: str) -> None:
    for encoded in SVG.findall(page):
        root = ElementTree.fromstring(base64.b64decode(encoded))  # raises on anything not XML
        assert root.tag.endswith("svg")
        for element in root.iter():
            for name, value in element.attrib.items():
                if name.endswith("href"):
                    assert value.startswith("#"), f"a chart refers outside itself: {value}"


def test_full_report_is_well_formed_self_contained_and_has_every_section(full_run: Path, tmp_path: Path,
                                                                         report_pm):
    page = write_report(full_run, tmp_path / "report.html", pm=report_pm).read_text()
    structure = assert_well_formed(page)
    assert_self_contained(page)
    assert_charts_are_valid_svg(page)
    assert sections_of(page) == ["Funnel", "Distributions", "Duplicate groups", "Caption story"]
    toc = re.findall(r'<li><a href="#([^"]+)">', page)
    assert toc == [i for i in structure.ids if i in toc] and len(toc) == 4  # one entry per section, in order
    assert page.count("data:image/jpeg") <= 48


def test_generic_run_gets_the_sections_its_data_supports(generic_run: Path, tmp_path: Path, report_pm):
    page = write_report(generic_run, tmp_path / "report.html", pm=report_pm).read_text()
    assert sections_of(page) == ["Funnel", "Distributions", "Duplicate groups"]
    assert "data:image/jpeg" not in page
    assert_well_formed(page)
    assert_self_contained(page)


def test_rendering_twice_gives_the_same_bytes(full_run: Path, tmp_path: Path, report_pm):
    first = write_report(full_run, tmp_path / "a.html", pm=report_pm).read_bytes()
    second = write_report(full_run, tmp_path / "b.html", pm=report_pm).read_bytes()
    assert first == second


class ExtraSections:
    """A plugin adding sections the way any plugin would."""

    @hookimpl
    def curate_report_sections(self, manifest):  # a subset of the hook's arguments is enough
        return [{"title": "Zeta notes", "html": f"<p>{len(manifest['steps'])} steps</p>", "order": 25},
                {"title": "Funnel", "html": "<p>same title, own anchor</p>", "order": 99}]


class BrokenSections:
    @hookimpl
    def curate_report_sections(self, run_dir, manifest):
        raise RuntimeError("nope")


class MalformedSections:
    @hookimpl
    def curate_report_sections(self):
        return [{"html": "<p>no title</p>"}]


def test_plugin_sections_are_placed_by_order_with_unique_anchors(generic_run: Path, tmp_path: Path,
                                                                 report_pm, pm, register_plugin):
    register_plugin(curate_report, "report")
    register_plugin(ExtraSections(), "extra")
    page = write_report(generic_run, tmp_path / "report.html", pm=pm).read_text()
    steps = len(read_manifest(generic_run)["steps"])
    assert sections_of(page) == ["Funnel", "Distributions", "Zeta notes", "Duplicate groups", "Funnel"]
    assert f"<p>{steps} steps</p>" in page
    assert 'id="funnel"' in page and 'id="funnel-2"' in page
    assert_well_formed(page)


def test_a_broken_plugin_costs_its_own_sections_only(generic_run: Path, pm, register_plugin):
    register_plugin(curate_report, "report")
    register_plugin(BrokenSections(), "broken")
    register_plugin(MalformedSections(), "malformed")
    with pytest.warns(ReportWarning) as caught:
        sections = collect_sections(pm, generic_run, read_manifest(generic_run))
    messages = " ".join(str(w.message) for w in caught)
    assert "plugin 'broken' failed to build its report sections: RuntimeError: nope" in messages
    assert "plugin 'malformed' returned a report section without 'title'" in messages
    titles = [s["title"] for s in sections]
    assert titles[:3] == ["Funnel", "Distributions", "Duplicate groups"] and "Broken sections" in titles


def test_the_report_is_written_when_the_run_finishes(workdir: Path, report_pm, monkeypatch):
    monkeypatch.setattr("curate.plugins._default", report_pm)  # the manager the hook renders with
    table = pl.DataFrame({"url": [f"https://e.org/{i}" for i in range(30)],
                          "alt_text": [f"a photo number {i % 9}" for i in range(30)]})
    spec = {**GENERIC_SPEC, "run": {}}
    run_spec(spec, workdir, tables={"corpus.parquet": table}, pm=report_pm)
    page = (workdir / "run" / REPORT).read_text()
    assert sections_of(page)[:2] == ["Funnel", "Distributions"]


def test_run_report_false_writes_no_report(workdir: Path, report_pm):
    table = pl.DataFrame({"url": ["https://e.org/1"], "alt_text": ["a photo of something"]})
    run_spec(GENERIC_SPEC, workdir, tables={"corpus.parquet": table}, pm=report_pm)
    assert not (workdir / "run" / REPORT).exists()


def test_a_report_that_cannot_be_rendered_warns_and_the_run_succeeds(workdir: Path, report_pm, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("curate_report.page.write_report", broken)
    table = pl.DataFrame({"url": ["https://e.org/1"], "alt_text": ["a photo of something"]})
    with pytest.warns(ReportWarning, match="the run finished, but its report could not be written: OSError"):
        manifest = run_spec({**GENERIC_SPEC, "run": {}}, workdir, tables={"corpus.parquet": table}, pm=report_pm)
    assert manifest["status"] == "complete"
    assert read_manifest(workdir / "run")["status"] == "complete"


def test_curate_report_command(generic_run: Path, tmp_path: Path, capsys, monkeypatch, report_pm):
    monkeypatch.setattr("curate.plugins._default", report_pm)
    out = tmp_path / "nested" / "page.html"
    assert main(["report", str(generic_run), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert_well_formed(out.read_text())
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a curate run directory" in capsys.readouterr().err


def test_curate_report_is_a_cli_command_of_the_installed_plugin(curate_cli, generic_run: Path, tmp_path: Path):
    """Through the entry point, in a fresh process, as a user runs it."""
    out = tmp_path / "cli.html"
    result = curate_cli("report", str(generic_run), "--out", str(out), timeout=300)
    assert result.code == 0, result
    assert out.stat().st_size > 0


HOSTILE = st.sampled_from(["<script>alert(1)</script>", "</div></section>", "\"'><img src=x>", "$x$ \\frac",
                           "a\x00b\x07c", "&amp;lt;", "]]>", "<!--", "😀 東京 مرحبا"])


@settings(max_examples=8)
@given(table=cst.tables(min_rows=1, max_rows=30), label=HOSTILE)
def test_any_table_makes_a_well_formed_self_contained_report(table: pl.DataFrame, label: str, tmp_path_factory,
                                                             report_pm):
    """Web text ends up in tables, cards, drop reasons, chart labels: it must stay text."""
    where = tmp_path_factory.mktemp("property")
    reason = label.replace("\x00", "")  # a drop reason is a spec string; YAML has no NUL
    spec = {
        "name": "property",
        "source": {"path": "input.parquet"},
        "steps": [
            {"step": "filter", "params": {"where": "length(alt_text) >= 3", "reason": reason}},
            {"step": "exact_dedup", "params": {"columns": ["alt_text"]}},
            {"step": "sql", "params": {"query": f"""
                SELECT *, 'realigned ' || alt_text AS caption_realigned, alt_text AS caption,
                       CASE WHEN length(alt_text) % 2 = 0 THEN left(alt_text, 12) ELSE {_sql(label)} END
                         AS caption_source
                FROM input"""}},
        ],
        "run": {"report": False},
    }
    run_spec(spec, where, tables={"input.parquet": table.drop("uid")}, pm=report_pm)
    page = write_report(where / "run", pm=report_pm).read_text()
    assert_well_formed(page)
    assert_self_contained(page)
    assert_charts_are_valid_svg(page)


def _sql(text: str) -> str:
    return "'" + text.replace("'", "''").replace("\x00", "") + "'"


def test_a_cached_rerun_shows_its_own_time_and_the_compute_behind_its_outputs(workdir: Path, report_pm):
    """Before, a fully cached re-run's report said 'run time 1.0 s' for outputs that took minutes."""
    import json

    from curate_report.page import compute_seconds, header

    table = pl.DataFrame({"url": [f"https://e.org/{i}" for i in range(30)],
                          "alt_text": [f"a photo number {i % 9}" for i in range(30)]})
    first = run_spec(GENERIC_SPEC, workdir, tables={"corpus.parquet": table}, pm=report_pm)
    again = run_spec(GENERIC_SPEC, workdir, pm=report_pm)
    assert all(step["cached"] for step in again["steps"])
    computed = [step["seconds"] for step in first["steps"]]
    assert [step["seconds"] for step in again["steps"]] == computed  # each step keeps its computed time
    assert compute_seconds(again) == (pytest.approx(sum(computed)), len(computed))

    # As a person reads it: pretend the steps took minutes and the cached re-run one second.
    slow = {**again, "seconds": 1.0, "steps": [{**step, "seconds": 60.0 * (i + 1)} for i, step in
                                                enumerate(again["steps"])]}
    minutes = sum(60 * (i + 1) for i in range(len(again["steps"])))
    html = str(header(slow))
    assert re.search(r'1\.0 s</div><div class="label">this run(&#x27;|\'|&#39;)s time', html)
    assert f"{minutes // 60} min 00 s" in html and "compute behind the outputs" in html
    assert f"({len(again['steps'])} of {len(again['steps'])} steps cached)" in html
    assert json.dumps(slow)  # the manifest stays plain data
