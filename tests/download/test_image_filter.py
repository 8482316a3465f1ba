"""image_filter drops rows whose image is degenerate, each with its reason: a 1 x 1 tracking pixel and
a 20000 x 10 strip went through the whole pipeline before it (CLIP scored them, the captioner gave
the pixel "a large red circle in the top left corner", and mix chose that caption)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest
from curate_download.imagefilter import ImageFilter, header_size

from curate.errors import SpecError
from curate.images import ImageGone, ImageFolders, clear_cache
from curate.schema import DROP_REASON, Image
from curate.step import StepContext
from curate.testing import run_step
from curate.testing.runner import read_step_output, run_spec
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)
from tests.download.conftest import read_dropped
from tests.odd_images import FILES, write_odd_images

# What the defaults (shorter side 32, 10 : 1) say of each odd file, read from its header alone.
ODD_VERDICTS = {
    "transparent": "image_too_small",  # 16 x 8
    "rotated": "image_too_small",  # stored 32 x 16, shown 16 x 32
    "plain": "image_too_small",  # 16 x 16
    "bomb": "image_unreadable",  # declares 60000 x 60000: over Pillow's limit, no step decodes it
    "truncated": None,  # its header is whole (decode: true drops it)
    "html": "image_unreadable",
    "pixel": "image_too_small",  # 1 x 1
    "strip": "image_too_elongated",  # 20000 x 10
    "icon": "image_too_small",  # 16 x 16
    "banner": None,  # 728 x 90: 8.1 : 1
    "turned_strip": "image_too_elongated",  # stored 400 x 24, shown 24 x 400
    "empty": "image_unreadable",
}


def sized(sizes: list[tuple[int | None, int | None]], **columns: list) -> pl.DataFrame:
    """Rows with original_width / original_height and an image reference that is never read."""
    return pl.DataFrame({
        "uid": [f"r{i}" for i in range(len(sizes))],
        "original_width": pl.Series([w for w, _ in sizes], dtype=pl.Int32),
        "original_height": pl.Series([h for _, h in sizes], dtype=pl.Int32),
        "image": pl.Series([{"shard": "never-read", "key": f"r{i}"} for i in range(len(sizes))], dtype=Image),
        **columns,
    })


def reasons(result) -> dict[str, str | None]:
    dropped = dict(result.dropped.select("uid", DROP_REASON).iter_rows()) if result.dropped.height else {}
    return {uid: dropped.get(uid) for uid in sorted([*result.kept["uid"], *dropped])}


@pytest.mark.parametrize(("size", "params", "reason"), [
    ((1, 1), {}, "image_too_small"),
    ((31, 300), {}, "image_too_small"),
    ((32, 32), {}, None),
    ((20_000, 10), {}, "image_too_elongated"),  # elongated is said before small
    ((32, 320), {}, None),  # exactly 10 : 1
    ((32, 321), {}, "image_too_elongated"),
    ((321, 32), {}, "image_too_elongated"),
    ((728, 90), {}, None),
    ((728, 90), {"max_aspect_ratio": 3}, "image_too_elongated"),
    ((20_000, 10), {"max_aspect_ratio": None}, "image_too_small"),
    ((1, 1), {"min_side": 0}, None),
    ((0, 0), {}, "image_too_small"),
    ((0, 50), {"min_side": 0, "min_pixels": 1}, "image_too_few_pixels"),  # a side of 0: never elongated
    ((100, 100), {"min_pixels": 10_001}, "image_too_few_pixels"),
    ((100, 100), {"min_pixels": 10_000}, None),
    ((200, 199), {"min_side": 200}, "image_too_small"),
])
def test_thresholds_on_the_size_columns(size, params, reason):
    result = run_step("image_filter", sized([size]), params)
    assert reasons(result) == {"r0": reason}
    assert result.summary["sized_by"] == {"columns": 1, "image": 0}  # no image was read


def test_float_columns_and_rows_without_a_size():
    """A source's size columns may be floats; a row without a size (null, NaN) and without an image
    is kept, and one without a size whose image is not there is judged by its file (missing)."""
    table = pl.DataFrame({"uid": ["a", "b", "c", "d"],
                          "original_width": [1.0, None, float("nan"), 640.0],
                          "original_height": [1.0, 5.0, 5.0, 480.0],
                          "image": pl.Series([{"shard": "x", "key": "a"}, None,
                                              {"shard": "/nowhere", "key": "c"}, {"shard": "x", "key": "d"}],
                                             dtype=Image)})
    result = run_step("image_filter", table)
    assert reasons(result) == {"a": "image_too_small", "b": None, "c": "image_missing", "d": None}
    dropped = run_step("image_filter", table, {"without_image": "drop", "unreadable": "keep"})
    assert reasons(dropped) == {"a": "image_too_small", "b": "no_image", "c": None, "d": None}


def test_sizes_columns_judge_a_table_before_its_images_are_downloaded():
    """sizes: columns reads no image column: a source's metadata (DataComp's original_width) is
    judged before a single URL is fetched; a row without a size is a row without an image."""
    table = pl.DataFrame({"uid": ["a", "b", "c"], "url": ["u"] * 3, "W": [1, 640, None], "H": [1, 480, 10]})
    params = {"sizes": "columns", "width_column": "W", "height_column": "H"}
    assert ImageFilter(ImageFilter.Params(**params)).input_columns() == {"W": pl.Float64, "H": pl.Float64}
    assert reasons(run_step("image_filter", table, params)) == {"a": "image_too_small", "b": None, "c": None}
    assert reasons(run_step("image_filter", table, {**params, "without_image": "drop"}))["c"] == "no_image"


def test_odd_files_in_a_local_folder(tmp_path):
    """A table of local images (no download): each file judged by its header, pixels not decoded."""
    refs = write_odd_images(tmp_path / "images")
    clear_cache()
    refs["gone"] = {"shard": str(tmp_path / "images"), "key": "not-there"}
    refs["none"] = None
    table = pl.DataFrame({"uid": list(refs), "image": pl.Series(list(refs.values()), dtype=Image)})
    result = run_step("image_filter", table, shard_size=5)
    assert reasons(result) == dict(sorted({**ODD_VERDICTS, "gone": "image_missing", "none": None}.items()))
    assert result.summary["sized_by"] == {"columns": 0, "image": 9}
    decoded = reasons(run_step("image_filter", table, {"decode": True}))
    assert decoded["truncated"] == "image_unreadable" and decoded["banner"] is None
    kept = reasons(run_step("image_filter", table, {"unreadable": "keep"}))
    broken = ["bomb", "html", "empty", "gone"]
    assert [uid for uid in broken if kept[uid] is None] == broken


def test_the_header_is_the_file_as_stored_and_the_verdict_ignores_orientation():
    from tests.odd_images import rotated_jpeg, turned_strip_jpeg

    assert header_size(rotated_jpeg()) == (32, 16)  # shown 16 x 32: every check is symmetric
    assert header_size(turned_strip_jpeg()) == (400, 24)
    assert header_size(FILES["html.jpg"]()) is None and header_size(b"") is None
    assert header_size(FILES["bomb.png"]()) is None  # DecompressionBombError, not a crash


def test_an_image_outside_an_untrusted_specs_folders_is_missing_and_not_opened(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    refs = write_odd_images(tmp_path / "elsewhere")
    inside = write_odd_images(work / "images")
    clear_cache()
    images = pl.Series([refs["banner"], inside["banner"]], dtype=Image)
    table = pl.DataFrame({"uid": ["out", "in"], "image": images})
    folders = ImageFolders((work.resolve(),), "untrusted", "copy them in")
    ctx = StepContext(run_dir=work, label="image_filter", seed=0, artifacts=work / "a", image_folders=folders)
    out = ImageFilter().process_shard(table, ctx)
    assert out[DROP_REASON].to_list() == ["image_missing", None]


def test_an_image_gone_from_the_runs_store_fails_the_step_with_the_refetch_hint(tmp_path):
    """As every step that reads images: a lost store is damage to say, not rows to drop."""
    (tmp_path / "store" / "abc123" / "artifacts").mkdir(parents=True)
    lost = pl.Series([{"shard": "abc123/artifacts/00000.tar", "key": "a"}], dtype=Image)
    table = pl.DataFrame({"uid": ["a"], "image": lost})
    ctx = StepContext(run_dir=tmp_path, label="image_filter", seed=0, artifacts=tmp_path / "a",
                      extras={"store_dir": str(tmp_path / "store")})
    with pytest.raises(ImageGone, match="does not exist") as raised:
        ImageFilter().process_shard(table, ctx)
    assert "--from" in raised.value.hint


@pytest.fixture
def with_download(register_plugin):
    """The test's plugin manager (basics only) with this plugin too."""
    import curate_download

    register_plugin(curate_download, "download")


def validate(write_spec, curate_main, steps, table=None):  # noqa: F811
    table = sized([(1, 1)]).drop("uid") if table is None else table
    table = table.with_columns(url=pl.lit("u"), alt_text=pl.lit("a"))
    write_spec({"name": "f", "source": {"path": "data.parquet"}, "steps": steps, "run": {"dir": "run"}},
               table=table)
    return curate_main("validate", "spec.yaml")


@pytest.mark.parametrize(("params", "said"), [
    ({"min_side": -1}, "steps[0].params.min_side: must be ≥ 0, got -1"),
    ({"max_aspect_ratio": 0.5}, "steps[0].params.max_aspect_ratio: must be ≥ 1, got 0.5"),
    ({"min_pixels": 0}, "steps[0].params.min_pixels: must be ≥ 1, got 0"),
    ({"sizes": "header"}, "steps[0].params.sizes"),
    ({"min_side": 0, "max_aspect_ratio": None, "unreadable": "keep"}, "every check is off"),
    ({"width_column": "w", "height_column": "w"}, "width_column and height_column are both 'w'"),
    ({"sizes": "columns", "decode": True}, "decode reads the images, and sizes: columns reads none"),
    ({"width_column": "W"}, "sizes: auto judges a row by 'W' (width_column) and 'original_height' "
                            "(height_column) where the input has both, and it has no 'W'"),
    ({"sizes": "columns", "width_column": "W", "height_column": "H"},
     "step 'image_filter' reads column 'W', which no upstream step produces"),
])
def test_bad_params_are_refused_at_validation_naming_them(write_spec, curate_main,  # noqa: F811
                                                         with_download, params, said):
    result = validate(write_spec, curate_main, [{"step": "image_filter", "params": params}])
    assert result.code == 2, result
    assert said in result.stderr and "internal error" not in result.stderr, result.stderr


def test_size_columns_that_are_not_numbers_or_come_alone_are_refused(write_spec, curate_main,  # noqa: F811
                                                                    with_download):
    text = sized([(1, 1)]).drop("uid").with_columns(pl.col("original_width").cast(pl.Utf8))
    result = validate(write_spec, curate_main, [{"step": "image_filter"}], table=text)
    assert result.code == 2
    assert "reads 'original_width' as a number of pixels, but it is String" in result.stderr
    alone = sized([(1, 1)]).drop("uid", "original_height")
    result = validate(write_spec, curate_main, [{"step": "image_filter"}], table=alone)
    assert result.code == 2 and "where the input has both, and it has no 'original_height'" in result.stderr
    plain = sized([(1, 1)]).drop("uid", "original_width", "original_height")
    assert validate(write_spec, curate_main, [{"step": "image_filter"}], table=plain).code == 0


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, name="odd-images", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.network
@pytest.mark.slow
def test_a_downloaded_table_is_judged_by_the_images_as_served(tmp_path):
    """resize_mode: border stores the 1 x 1 pixel and the 20000 x 10 strip as 64 x 64 pictures
    (``width``/``height`` 64): judged by the download's original_width / original_height, they go.
    The files the download refused (the bomb, the HTML page, the empty body) never reach the step."""
    folder = tmp_path / "served"
    write_odd_images(folder)
    with serve_folder(folder) as base:
        names = sorted(FILES)
        table = pl.DataFrame({"url": [f"{base}/{name}" for name in names], "alt_text": names})
        spec = {"name": "odd", "source": {"path": "data.parquet"},
                "steps": [{"step": "download", "params": {"image_size": 64, "allowed_hosts": ["127.0.0.1"],
                                                          "threads": 4, "timeout": 30, "drop_failed": True}},
                          {"step": "image_filter"}],
                "run": {"dir": "run"}}
        manifest = run_spec(spec, tmp_path / "work", tables={"data.parquet": table})
    downloaded = read_step_output(manifest, "download")
    assert set(downloaded["width"]) == {64}  # every stored picture is 64 x 64
    kept = read_step_output(manifest, "image_filter")
    dropped = read_dropped(manifest, "image_filter")
    verdicts = {**{name: None for name in kept["alt_text"]},
                **dict(dropped.select("alt_text", DROP_REASON).iter_rows())}
    assert verdicts == {name: ODD_VERDICTS[name.split(".")[0]] for name in downloaded["alt_text"]}
    assert {"pixel.gif", "strip.png", "banner.jpg"} <= set(verdicts)
    record = next(r for r in manifest["steps"] if r["label"] == "image_filter")
    assert record["summary"]["sized_by"] == {"columns": downloaded.height, "image": 0}
    # judging the stored files instead would keep the pixel: refused at planning, saying why
    spec["steps"][1]["params"] = {"sizes": "image"}
    with pytest.raises(SpecError, match=r"sizes: image judges the stored images, which step 'download' "
                                        r"resized \(resize_mode: border\)"):
        run_spec(spec, tmp_path / "again", tables={"data.parquet": table})
