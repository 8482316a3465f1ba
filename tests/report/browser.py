"""The headless-Chromium harness the browser tests share: Debian's chromium driven by Playwright,
every request that would leave the page refused and recorded, console errors collected."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(tempfile.gettempdir()) / "curate-report"

def launch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A persistent context: the only way Playwright takes a fresh --user-data-dir of our own."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=FLAGS, viewport={"width": 1280, "height": 900}, offline=True,
        )
        try:
            yield context
        finally:
            context.close()


def open_report(context: Any, path: Path) -> tuple[Any, list[str], list[str]]:
    """Load ``path``; return the page, console errors and requests that tried to leave the page."""
    page = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))

    def refuse(route: Any) -> None:
        if not route.request.url.startswith(("file:", "data:")):
            outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", refuse)
    page.goto(path.as_uri(), wait_until="load")
    return page, errors, outside


def images_state(page: Any) -> dict[str, int]:
    return page.evaluate("""() => {
        const images = [...document.images];
        return {
            total: images.length,
            broken: images.filter(i => !i.complete || i.naturalWidth === 0).length,
            thumbnails: images.filter(i => i.classList.contains('thumb')).length,
            charts: images.filter(i => i.classList.contains('chart')).length,
        };
    }""")
