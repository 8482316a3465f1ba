"""A report of a run directory from someone else shows no table from elsewhere on this disk.

The manifest names each step's folder (a record's ``path``), the run's ``steps/NN_label`` entries
are links, and a step that stored no kept rows names the files it reads in ``kept.json``: a forged
run could make the page show, as caption cards and tables, the rows of any Parquet file laid out
as curate lays out a step. Rows are read from inside the run directory only, plus the folders the
user allows (``curate report RUN --read-from DIR``), as images are (test_image_confinement); the
page says which steps it left out and the command that allows them. The report a run writes about
itself reads its own rows wherever its store is (``run.cache_dir``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from curate_report.sections import ReportWarning

from curate.runfiles import FileOutside
from tests.report.conftest import build_run, curation_spec
from tests.report.test_image_confinement import THUMBNAIL, render

SECRET = "the user's own caption, never to be shared"
CAPTIONS = 6  # the last step, with the caption columns the caption cards show


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory, report_pm) -> Path:
    """A real run of the full fixture spec. Shared: tests forge copies of it."""
    return build_run(tmp_path_factory.mktemp("original"), report_pm)


def manifest_of(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def users_step(where: Path, run: Path) -> Path:
    """Outside the run: a folder of the user's laid out as a step (another run of theirs), its rows
    the run's own captions step's with every text the user's secret."""
    folder = where / "users_other_run" / "store" / "0123456789abcdef0123"
    (folder / "data").mkdir(parents=True)
    own = Path(manifest_of(run)["steps"][CAPTIONS]["path"])
    rows = pl.read_parquet(own / "data" / "shard-00000.parquet")
    texts = [c for c in ("alt_text", "caption", "caption_realigned") if c in rows.columns]
    rows.with_columns(pl.lit(SECRET).alias(c) for c in texts).write_parquet(folder / "data" / "shard-00000.parquet")
    shutil.copy(own / "_COMPLETE.json", folder / "_COMPLETE.json")
    return folder


def copy_of(original: Path, where: Path) -> Path:
    """The run directory, with its store, copied as someone would send it (links kept as links)."""
    shutil.copytree(original, where / "run", symlinks=True)
    manifest = manifest_of(where / "run")
    for record in manifest["steps"]:  # the paths the sender's machine had, gone on this one
        record["path"] = str(where / "senders_disk" / Path(record["path"]).name)
    manifest["store_dir"] = str(where / "senders_disk")
    (where / "run" / "manifest.json").write_text(json.dumps(manifest))
    return where / "run"


def edit_record(run: Path, **changes) -> None:
    manifest = manifest_of(run)
    manifest["steps"][CAPTIONS].update(changes)
    (run / "manifest.json").write_text(json.dumps(manifest))


def forge_path(run: Path, users: Path) -> None:
    """The record names the user's folder, and the run's own link to its step is gone."""
    edit_record(run, path=str(users))
    (run / "steps" / "06_captions").unlink()


def forge_step_link(run: Path, users: Path) -> None:
    (run / "steps" / "06_captions").unlink()
    (run / "steps" / "06_captions").symlink_to(users)


def forge_shard_link(run: Path, users: Path) -> None:
    """The run's own step folder, its shard a link to the user's."""
    shard = (run / "steps" / "06_captions" / "data" / "shard-00000.parquet").resolve()
    shard.unlink()
    shard.symlink_to(users / "data" / "shard-00000.parquet")


def forge_reference(run: Path, users: Path) -> None:
    """The step says it stored no kept rows (it ran fused, a source read in place) and its
    kept.json names the user's file."""
    step = (run / "steps" / "06_captions").resolve()
    shutil.rmtree(step / "data")
    columns = pl.read_parquet_schema(users / "data" / "shard-00000.parquet")
    (step / "kept.json").write_text(json.dumps({
        "format": 2, "files": [str(users / "data" / "shard-00000.parquet")], "select": [[c, c] for c in columns],
        "uids": False, "columns": list(columns)}))
    edit_record(run, kept_rows_stored=False)


FORGERIES: dict[str, Callable[[Path, Path], None]] = {
    "record path": forge_path, "step link": forge_step_link, "shard link": forge_shard_link,
    "kept.json": forge_reference,
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_run_shows_no_rows_from_outside_and_says_so(original: Path, tmp_path: Path, forgery: str):
    run = copy_of(original, tmp_path)
    users = users_step(tmp_path, original)
    FORGERIES[forgery](run, users)
    with pytest.warns(ReportWarning, match="were not read") as warned:
        page = render(run, tmp_path / "report.html")
    assert SECRET not in page.replace("&#x27;", "'")
    assert "Rows not read" in page and "step &#x27;captions&#x27; were not read" in page
    command = f"curate report {shlex.quote(str(run))} --read-from {shlex.quote(os.path.realpath(users))}"
    assert command in page.replace("&#x27;", "'")
    assert len(warned) == 1 and command in str(warned[0].message)
    allowed = render(run, tmp_path / "allowed.html", read_from=[users])  # the user trusts it: shown, no warning
    assert SECRET in allowed.replace("&#x27;", "'") and "not read" not in allowed


def test_a_record_naming_a_folder_elsewhere_falls_back_to_the_runs_own(original: Path, tmp_path: Path):
    """A run copied or moved keeps its old paths in the manifest; its steps/ links are its own."""
    run = copy_of(original, tmp_path)
    edit_record(run, path=str(users_step(tmp_path, original)))
    page = render(run, tmp_path / "report.html")  # and no warning: the run's own rows were all read
    assert SECRET not in page.replace("&#x27;", "'") and "not read" not in page
    assert page.count(THUMBNAIL) >= 12


def test_a_run_whose_store_is_its_own_renders_the_page_it_wrote(tmp_path: Path, report_pm):
    """Outputs of normal runs stay the same: ``curate report`` of a run with its store inside
    writes the very page the run wrote about itself."""
    run = build_run(tmp_path, report_pm, curation_spec(report=True))
    assert render(run, tmp_path / "again.html") == (run / "report.html").read_text(encoding="utf-8")


def test_a_store_kept_elsewhere_is_named_and_allowed_with_read_from(workdir: Path, report_pm, curate_cli):
    """``run.cache_dir`` keeps the store outside the run: the run's own report reads it; ``curate
    report`` on the directory alone cannot tell it from a forged one's, and says exactly what to
    pass; with it, the page is the one the run wrote."""
    spec = curation_spec(report=True)
    spec["run"]["cache_dir"] = str(workdir / "cache")
    run = build_run(workdir, report_pm, spec, with_images=False)
    own = (run / "report.html").read_text(encoding="utf-8")
    assert "Caption story" in own and "not read" not in own
    refused = curate_cli("report", str(run), "--out", str(workdir / "refused.html"))
    assert refused.code == 0, refused
    command = f"curate report {run} --read-from {(workdir / 'cache').resolve()}"
    assert "curate: warning:" in refused.stderr and command in refused.stderr
    assert "Caption story" not in (workdir / "refused.html").read_text(encoding="utf-8")
    allowed = curate_cli(*shlex.split(command)[1:], "--out", str(workdir / "allowed.html"))
    assert allowed.code == 0 and "warning" not in allowed.stderr, allowed
    assert (workdir / "allowed.html").read_text(encoding="utf-8") == own


def test_a_file_outside_is_refused_before_it_is_opened(original: Path, tmp_path: Path):
    from curate_report.rundata import RunData

    run = copy_of(original, tmp_path)
    users = users_step(tmp_path, original)
    forge_shard_link(run, users)
    os.chmod(users / "data" / "shard-00000.parquet", 0)  # opening it would fail, not be refused
    with RunData(run) as data:
        record = data.manifest["steps"][CAPTIONS]
        assert data.files(record) == []
        with pytest.raises(FileOutside, match="outside the folders the report may read"):
            data.confine(record, run / "steps" / "06_captions" / "data" / "shard-00000.parquet")
        assert data.rows_outside == {"captions": (users / "data" / "shard-00000.parquet").resolve()}
