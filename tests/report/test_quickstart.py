"""The README's main command, end to end: ``curate run specs/quickstart.yaml`` on the embedded
world (generate, serve on loopback, img2dataset, normalize, world CLIP, copy-detection
descriptors and semantic dedup, the shipped realignment captioner, score-gated blend, exports),
then its report in headless Chromium.

What is asserted is behaviour the world's ground truth makes checkable: near-duplicates are gone
and only near-duplicates were dropped, the blend replaces junk alt-texts with realigned captions
and keeps faithful ones, every stage left its table, and the page renders with every section, no
broken image and a clean console.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import REPO
from tests.report.browser import CHROMIUM, SCREENSHOTS, images_state, open_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import subprocess
    import sys

    from tests.conftest import cli_env

    workdir = tmp_path_factory.mktemp("quickstart")
    completed = subprocess.run(
        [sys.executable, "-m", "curate.cli", "run", str(REPO / "specs" / "quickstart.yaml")],
        cwd=workdir, env=cli_env(), capture_output=True, text=True, timeout=900, check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return workdir / "runs" / "quickstart"


def test_the_quickstart_blends_captions_where_the_alt_text_is_junk(quickstart: Path):
    for output in ("report.html", "curated.parquet", "manifest.json", "curate.duckdb"):
        assert (quickstart / output).exists(), output
    assert any((quickstart / "shards").glob("*.tar"))
    with duckdb.connect(str(quickstart / "curate.duckdb"), read_only=True) as db:
        rows = dict(db.sql("SELECT gt_noise_type, count(*) FROM final GROUP BY 1").fetchall())
        synthetic = dict(db.sql("SELECT gt_noise_type, count(*) FILTER (caption_source = 'synthetic') "
                                "FROM final GROUP BY 1").fetchall())
        captions = db.sql("SELECT count(*) FILTER (caption IS NULL OR caption = ''), "
                          "count(*) FILTER (caption_source = 'synthetic' AND caption <> caption_realigned) "
                          "FROM final").fetchall()[0]
    total = sum(rows.values())
    assert 600 <= total <= 1000, rows  # 1000 generated, ~15 % faulty URLs, a few duplicates
    junk = sum(rows[k] for k in ("boilerplate", "empty", "unrelated"))
    assert sum(synthetic[k] for k in ("boilerplate", "empty", "unrelated")) >= 0.8 * junk, (rows, synthetic)
    assert synthetic["faithful"] <= 0.3 * rows["faithful"], (rows, synthetic)
    assert 0.2 <= sum(synthetic.values()) / total <= 0.6, (rows, synthetic)
    assert captions == (0, 0), captions  # every row has a caption; a synthetic one is the realigned text


def test_the_quickstart_removes_the_planted_near_duplicates_and_nothing_else(quickstart: Path):
    with duckdb.connect(str(quickstart / "curate.duckdb"), read_only=True) as db:
        step = next(t for (t,) in db.sql("SHOW TABLES").fetchall() if t.endswith("_dedup_semantic_dropped"))
        upstream = next(t for (t,) in db.sql("SHOW TABLES").fetchall() if t.endswith("_copy_embed"))
        dropped, same_scene = db.sql(
            f'SELECT count(*), count(*) FILTER (d.gt_description = k.gt_description) FROM "{step}" d '
            f'JOIN "{upstream}" k ON d._duplicate_of = k.uid').fetchall()[0]
        planted_left = db.sql("SELECT count(*) FROM (SELECT gt_dup_group FROM final WHERE gt_dup_group IS NOT NULL "
                              "GROUP BY 1 HAVING count(*) > 1)").fetchall()[0][0]
    assert dropped >= 20, dropped  # the world plants ~5 % of rows as copies of another row's scene
    assert same_scene >= 0.95 * dropped, (dropped, same_scene)  # a dropped row's survivor shows its scene
    assert planted_left <= 2, planted_left  # and (almost) no planted group keeps two copies


def test_the_quickstart_report_embeds_every_image_of_its_own(quickstart: Path, tmp_path: Path):
    """Its images lie in its own store (shard paths relative to it): the report the run wrote and
    ``curate report`` on the directory alone both embed them and leave none out."""
    import subprocess
    import sys

    from tests.conftest import cli_env

    completed = subprocess.run([sys.executable, "-m", "curate.cli", "report", str(quickstart), "--out",
                                str(tmp_path / "report.html")], env=cli_env(), capture_output=True, text=True,
                               timeout=600, check=False)
    assert completed.returncode == 0 and "warning" not in completed.stderr, completed.stderr
    for page in (quickstart / "report.html", tmp_path / "report.html"):
        text = page.read_text(encoding="utf-8")
        assert text.count('<img class="thumb"') >= 8 and 'class="thumb missing"' not in text, page
        assert "not embedded" not in text, page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_the_quickstart_report_renders_in_chromium(browser: Any, quickstart: Path):
    page, errors, outside = open_report(browser, quickstart / "report.html")
    titles = page.locator("section.panel > h2").all_inner_texts()
    assert titles == ["Funnel", "Distributions", "Duplicate groups", "Caption story"]
    images = images_state(page)
    assert images["broken"] == 0, images
    assert images["charts"] >= 4 and images["thumbnails"] >= 8, images
    assert not errors, errors
    assert not outside, outside
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "quickstart.png"), full_page=True)
    page.close()
