"""A report of a run directory from someone else embeds no file from elsewhere on this disk.

The rows of a run name their image files (``image = {shard, key}``), and so does its manifest
(``store_dir``): a forged run could make the page carry, as thumbnails, any picture on the
computer that renders it. The page embeds images from inside the run directory only, plus the
folders the user allows (``curate report RUN --read-from DIR``, once ``--images-from``), and says once how many it
left out, why, and the command that allows them. A pipe where a shard should be is a missing
image, never a report that waits forever.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from curate_report.page import write_report
from curate_report.sections import ReportWarning

from curate.testing import run_spec
from tests.report.checks import assert_self_contained, assert_well_formed
from tests.report.conftest import corpus, curation_spec, image_bytes, write_shard

THUMBNAIL = '<img class="thumb"'
PLACEHOLDER = 'class="thumb missing"'
LEFT_OUT = re.compile(r"([\d,]+) images? (?:was|were) not embedded")


def run_with_images(where: Path, pm, shard: str, *, prepare: Callable[[Path], None] = lambda where: None,
                    spec: dict | None = None) -> Path:
    """A run of the full fixture spec whose rows point at ``shard`` (relative to the run's store),
    with ``prepare(where)`` laying out files first; the pictures themselves are in
    ``where/outside/holiday.tar`` (someone's own, outside the run)."""
    where.mkdir(parents=True, exist_ok=True)
    write_shard(where / "outside" / "holiday.tar", 12)
    (where / "run" / "store").mkdir(parents=True)
    prepare(where)
    corpus(120, 12, shard).write_parquet(where / "corpus.parquet")
    run_spec(spec or curation_spec(), where, pm=pm)
    return where / "run"


def link_store_shard(where: Path) -> None:
    (where / "run" / "store" / "images").mkdir()
    (where / "run" / "store" / "images" / "00000.tar").symlink_to(where / "outside" / "holiday.tar")


def link_members(where: Path) -> None:
    """A folder shard inside the store whose members are links to pictures outside."""
    (where / "outside" / "pictures").mkdir(parents=True)
    (where / "run" / "store" / "pictures").mkdir()
    for index in range(12):
        picture = where / "outside" / "pictures" / f"{index:06d}.jpg"
        picture.write_bytes(image_bytes(index))
        (where / "run" / "store" / "pictures" / picture.name).symlink_to(picture)


FORGERIES = {  # the row's shard, and what to lay out first
    "absolute shard": ("{where}/outside/holiday.tar", None),
    "shard with ..": ("../../outside/holiday.tar", None),
    "link in the store": ("images/00000.tar", link_store_shard),
    "links as folder members": ("pictures", link_members),
}


@pytest.fixture(scope="module", params=sorted(FORGERIES))
def forged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, report_pm) -> tuple[Path, Path]:
    """(run directory, the folder of the pictures it reaches for)."""
    shard, prepare = FORGERIES[request.param]
    where = tmp_path_factory.mktemp("forged")
    run = run_with_images(where, report_pm, shard.format(where=where), prepare=prepare or (lambda where: None))
    pictures = where / "outside" / ("pictures" if prepare is link_members else "")
    return run, Path(os.path.realpath(pictures))


def render(run: Path, out: Path, **options) -> str:
    page = write_report(run, out, **options).read_text(encoding="utf-8")
    assert_well_formed(page)
    assert_self_contained(page)
    return page


def test_a_forged_run_embeds_no_picture_from_outside_and_says_so(forged: tuple[Path, Path], tmp_path: Path):
    run, pictures = forged
    with pytest.warns(ReportWarning, match="not embedded.*--read-from") as warned:
        page = render(run, tmp_path / "report.html")
    assert THUMBNAIL not in page
    placeholders = page.count(PLACEHOLDER)
    assert placeholders > 0
    assert page.count("Images not embedded") == 2  # its section, once, and its entry in the contents
    count = int(LEFT_OUT.search(page).group(1))
    assert 0 < count <= placeholders
    command = f"curate report {shlex.quote(str(run))} --read-from {shlex.quote(str(pictures))}"
    assert command in page.replace("&#x27;", "'")  # the command that allows them, for a run you trust
    assert len(warned) == 1 and command in str(warned[0].message)


def test_allowing_the_folder_embeds_them(forged: tuple[Path, Path], tmp_path: Path):
    run, pictures = forged
    page = render(run, tmp_path / "report.html", images_from=[pictures])  # and no warning
    assert page.count(THUMBNAIL) >= 12 and "not embedded" not in page


def test_a_manifest_naming_a_store_elsewhere_is_not_followed(tmp_path: Path, report_pm):
    """``store_dir`` in the manifest is data too: relative shards resolved against a folder of
    someone's own are refused like any other file outside."""
    run = run_with_images(tmp_path, report_pm, "holiday.tar")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["store_dir"] = str(tmp_path / "outside")
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(ReportWarning, match="not embedded"):
        page = render(run, tmp_path / "report.html")
    assert THUMBNAIL not in page and PLACEHOLDER in page
    assert f"--read-from {tmp_path.resolve() / 'outside'}" in page


def test_shards_inside_the_run_are_embedded_however_they_are_named(tmp_path: Path, report_pm):
    """An absolute shard inside the run directory (the experiment's RUN_DIR/world/images), and a
    link that stays inside, are the run's own."""
    def prepare(where: Path) -> None:
        write_shard(where / "run" / "world" / "00000.tar", 12)

    run = run_with_images(tmp_path, report_pm, str(tmp_path / "run" / "world" / "00000.tar"), prepare=prepare)
    page = render(run, tmp_path / "report.html")
    assert page.count(THUMBNAIL) >= 12 and "not embedded" not in page


def test_a_store_outside_the_run_is_its_own_when_the_run_writes_its_report(workdir: Path, report_pm):
    """``run.cache_dir`` keeps the store elsewhere: the report the run writes embeds its images;
    ``curate report`` on the directory alone cannot tell that store from a forged one, and names it."""
    spec = curation_spec(report=True)
    spec["run"]["cache_dir"] = str(workdir / "cache")

    def prepare(where: Path) -> None:
        write_shard(where / "cache" / "images" / "00000.tar", 12)

    run = run_with_images(workdir, report_pm, "images/00000.tar", prepare=prepare, spec=spec)
    assert (run / "report.html").read_text(encoding="utf-8").count(THUMBNAIL) >= 12
    with pytest.warns(ReportWarning, match="were not read") as warned:  # its rows first (test_row_confinement)
        page = render(run, workdir / "again.html")
    assert len(warned) == 1  # one note, one folder to allow for the store's rows and images
    assert THUMBNAIL not in page and f"--read-from {(workdir / 'cache').resolve()}" in page
    assert render(run, workdir / "allowed.html", read_from=[workdir / "cache"]).count(THUMBNAIL) >= 12


def test_the_report_a_run_writes_shows_the_images_its_rows_name_wherever_they_lie(workdir: Path, report_pm):
    """A world's or an experiment's rows name its image folder by absolute path: the run has just
    read those images itself, so its own report embeds them; ``curate report`` on the directory
    alone cannot tell them from a forged run's, and names the folder to allow."""
    run = run_with_images(workdir, report_pm, str(workdir / "outside" / "holiday.tar"), spec=curation_spec(report=True))
    own = (run / "report.html").read_text(encoding="utf-8")
    assert own.count(THUMBNAIL) >= 12 and "not embedded" not in own
    with pytest.warns(ReportWarning, match="not embedded"):
        page = render(run, workdir / "again.html")
    assert THUMBNAIL not in page and f"--read-from {(workdir / 'outside').resolve()}" in page


def test_the_full_run_still_shows_its_thumbnails(full_run: Path, tmp_path: Path):
    """The layout the download step writes (shards relative to RUN_DIR/store): nothing left out."""
    page = render(full_run, tmp_path / "report.html")
    assert page.count(THUMBNAIL) >= 12 and "not embedded" not in page


def test_a_pipe_in_place_of_a_shard_is_a_missing_image(tmp_path: Path, report_pm, curate_cli):
    """Through the command, in a subprocess with a time limit: a report that waited on the pipe
    for a writer would never end."""
    def prepare(where: Path) -> None:
        (where / "run" / "store" / "images").mkdir()
        os.mkfifo(where / "run" / "store" / "images" / "00000.tar")

    run = run_with_images(tmp_path, report_pm, "images/00000.tar", prepare=prepare)
    result = curate_cli("report", str(run), "--out", str(tmp_path / "report.html"), timeout=300)
    assert result.code == 0, result
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert THUMBNAIL not in page and PLACEHOLDER in page and "not embedded" not in page  # inside, just not a file


def test_the_command_allows_folders(tmp_path: Path, report_pm, curate_cli):
    run = run_with_images(tmp_path, report_pm, str(tmp_path / "outside" / "holiday.tar"))
    refused = curate_cli("report", str(run), "--out", str(tmp_path / "refused.html"))
    assert refused.code == 0, refused
    assert "curate: warning:" in refused.stderr and "--read-from" in refused.stderr
    allowed = curate_cli("report", str(run), "--out", str(tmp_path / "allowed.html"),  # its old name, and the new
                         "--images-from", str(tmp_path / "outside"), "--read-from", str(tmp_path))
    assert allowed.code == 0, allowed
    assert "warning" not in allowed.stderr
    assert (tmp_path / "allowed.html").read_text(encoding="utf-8").count(THUMBNAIL) >= 12
    missing = curate_cli("report", str(run), "--images-from", str(tmp_path / "nowhere"))
    assert missing.code != 0 and "nowhere" in missing.stderr and "does not exist" in missing.stderr


def test_experiment_results_linked_from_outside_are_not_read(tmp_path: Path):
    """``experiment/results.json`` is the run's own file; a link to a JSON file of yours (a dict of
    dicts renders as a table: a config file with its tokens) fails the section, unread."""
    from curate_report.sections import build_all

    (tmp_path / "mine.json").write_text(json.dumps({"registry": {"auth": "c2VjcmV0LXRva2Vu"}}))
    (tmp_path / "run" / "experiment").mkdir(parents=True)
    (tmp_path / "run" / "experiment" / "results.json").symlink_to(tmp_path / "mine.json")
    with pytest.warns(ReportWarning, match="link out of the run directory"):
        sections = build_all(tmp_path / "run", {"steps": []})
    html = "".join(section["html"] for section in sections)
    assert "c2VjcmV0LXRva2Vu" not in html and "it was not read" in html
    (tmp_path / "run" / "experiment" / "results.json").unlink()
    (tmp_path / "run" / "experiment" / "results.json").write_text(json.dumps({"raw": {"accuracy": 0.4}}))
    assert "<td>raw</td>" in "".join(section["html"] for section in build_all(tmp_path / "run", {"steps": []}))


def test_a_pipe_in_place_of_a_step_file_fails_its_sections_not_the_wait(tmp_path: Path, report_pm, curate_cli):
    """The same for the step's Parquet files, which DuckDB and polars would wait on."""
    run = run_with_images(tmp_path, report_pm, "images/00000.tar", prepare=link_store_shard)
    shard = (run / "steps" / "06_captions" / "data" / "shard-00000.parquet").resolve()
    shard.unlink()
    os.mkfifo(shard)
    result = curate_cli("report", str(run), "--out", str(tmp_path / "report.html"), "--images-from",
                        str(tmp_path / "outside"), timeout=300)
    assert result.code == 0, result
    assert f"{shard} is a pipe (FIFO)" in result.stderr
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "could not be rendered" in page and "Funnel" in page
