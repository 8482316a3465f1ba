"""The report in a real browser: headless Chromium (Debian's package) driven by Playwright, with
every network request refused. Sections, table of contents and images must be there, every
image must decode, and the console must stay clean. A screenshot is kept for people to look at:
``$TMPDIR/curate-report/report.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from curate_report.html import Html
from curate_report.page import render_page, write_report

from tests.report.browser import CHROMIUM, SCREENSHOTS, images_state, open_report

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"),
]


def test_the_report_renders_in_chromium(browser: Any, full_run: Path, tmp_path: Path, report_pm):
    report = write_report(full_run, tmp_path / "report.html", pm=report_pm)
    page, errors, outside = open_report(browser, report)
    titles = page.locator("section.panel > h2").all_inner_texts()
    assert titles == ["Funnel", "Distributions", "Duplicate groups", "Caption story"]
    assert page.locator("nav.toc a").all_inner_texts() == titles
    images = images_state(page)
    assert images["broken"] == 0, images
    assert images["charts"] >= 6 and images["thumbnails"] >= 12, images
    assert page.locator("figure.tile.survivor").count() >= 1
    assert page.locator(".card").count() >= 1
    page.locator("nav.toc a", has_text="Caption story").click()
    page.wait_for_function("() => document.querySelector('#caption-story').getBoundingClientRect().top < 40")
    assert not errors, errors
    assert not outside, outside
    SCREENSHOTS.mkdir(exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=True)
    page.close()


def test_a_100k_row_report_opens_quickly(browser: Any, big_run: Path, tmp_path: Path, report_pm):
    report = write_report(big_run, tmp_path / "report.html", pm=report_pm)
    page, errors, outside = open_report(browser, report)
    load_ms = page.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd")
    print(f"100k-row report ({report.stat().st_size / 1e6:.2f} MB) loaded in {load_ms:.0f} ms")
    assert load_ms < 5000  # about a second unloaded; the bound leaves room for a shared machine
    assert images_state(page)["broken"] == 0
    assert not errors and not outside
    page.screenshot(path=str(SCREENSHOTS / "report-100k.png"), full_page=False)
    page.close()


def test_the_harness_sees_a_page_that_reaches_out(browser: Any, tmp_path: Path):
    """Guards the two checks above: a request to the network and a script error are caught."""
    page_file = tmp_path / "leaky.html"
    page_file.write_text('<!DOCTYPE html><html><body><img src="http://192.0.2.1/x.png">'
                         "<script>undefined_function()</script></body></html>")
    page, errors, outside = open_report(browser, page_file)
    assert outside == ["http://192.0.2.1/x.png"]
    assert any("undefined_function" in e for e in errors)
    page.close()


def test_a_section_that_forgot_to_escape_runs_no_script_and_fetches_nothing(browser: Any, tmp_path: Path):
    """Defense in depth for sections from plugins: the page's Content-Security-Policy."""
    leak = Html('<img src="http://192.0.2.1/pixel.png"><script>window.ran = true</script>'
                '<link rel="stylesheet" href="http://192.0.2.1/x.css">')
    page_file = tmp_path / "report.html"
    page_file.write_text(render_page({"name": "csp", "steps": []}, [{"title": "Leaky", "html": leak}]))
    page, errors, outside = open_report(browser, page_file)
    assert outside == []
    assert page.evaluate("() => window.ran === undefined")
    assert any("Content Security Policy" in e for e in errors), errors
    page.close()
