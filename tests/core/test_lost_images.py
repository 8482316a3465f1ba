"""Images a step stored in the run's store (a download's tars) that are gone or cut short are never
read as rows without an image.

Before, a step's markers recorded its row files only: a store that lost its images (a cleanup, an
rsync or archive that left ``artifacts/`` out, a lost disk) was reused as finished, and a step that
read them (clip_score, copy_embed) wrote a null for every row, the run "complete". Now the markers
record the size of each image file the rows point at: a step whose images are gone or of another
size is recomputed, storing them again, as a damaged row file is; and a step that still finds a
reference into the store it cannot read (a store written before, a shard cut short) fails naming
the step, the file and how to store the images again.

Two stand-in steps keep it fast: ``store_images`` writes a tar of one JPEG per row in its
artifacts and points each row at it, as the download step does; ``image_sizes`` reads each row's
image through :mod:`curate.images`, as the model steps do.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import polars as pl
import pytest

from curate.hookspecs import hookimpl
from curate.images import ImageGone, ImageNotFound, clear_cache, iter_images, read_image_bytes
from curate.plugins import PluginManager
from curate.runstore import StoreWarning
from curate.schema import UID, Image
from curate.step import Step
from curate.testing import run_spec
from tests.conftest import builtin_plugins, sample_table

ROWS = 12


def jpeg(seed: int) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (8 + seed % 5, 8), (seed * 20 % 256, 90, 7)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class StoreImages(Step):
    """A download without a network: a tar per shard of ``<uid>.jpg``, rows pointing into it; every
    third row "failed" (no image, a null reference)."""

    name = "store_images"
    reads = {UID: pl.Utf8, "url": pl.Utf8}
    writes = {"image": Image}

    def process_shard(self, table, ctx):
        shard_dir = ctx.artifacts / f"shard-{ctx.shard or 0:05d}"
        shard_dir.mkdir(parents=True, exist_ok=True)
        tar = shard_dir / "00000.tar"
        refs = []
        with tarfile.open(tar, "w", format=tarfile.USTAR_FORMAT) as archive:
            for position, uid in enumerate(table[UID]):
                if position % 3 == 2:
                    refs.append(None)
                    continue
                data = jpeg(position)
                info = tarfile.TarInfo(f"{uid}.jpg")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
                refs.append({"shard": tar.relative_to(ctx.extras["store_dir"]).as_posix(), "key": uid})
        return table.with_columns(pl.Series("image", refs, dtype=Image))


class ImageSizes(Step):
    """Reads every row's image as the model steps do: a row without one gets a null."""

    name = "image_sizes"
    reads = {UID: pl.Utf8, "image": Image}
    writes = {"image_bytes": pl.Int64}

    def process_shard(self, table, ctx):
        sizes = [None if data is None else len(data)
                 for data in iter_images(table["image"], ctx.extras["store_dir"], as_bytes=True)]
        return table.with_columns(pl.Series("image_bytes", sizes, dtype=pl.Int64))


class ImageSteps:
    @hookimpl
    def curate_register_steps(self):
        return [StoreImages, ImageSizes]


def spec(*, reader: bool = True, outputs: list | None = None, then: tuple = ()) -> dict:
    steps = [{"step": "store_images"}] + ([{"step": "image_sizes"}] if reader else []) + list(then)
    return {"name": "lost", "source": {"path": "data.parquet"}, "steps": steps,
            "outputs": outputs or [{"format": "parquet", "path": "out.parquet"}],
            "run": {"dir": "run", "shard_size": 6, "report": False}}


@pytest.fixture
def pm() -> PluginManager:
    return builtin_plugins("basics", "export")


@pytest.fixture
def images_pm(pm, register_plugin):
    register_plugin(ImageSteps(), "image_steps")
    clear_cache()
    return pm


def tars(workdir: Path) -> list[Path]:
    return sorted((workdir / "run" / "store").glob("*/artifacts/shard-*/00000.tar"))


def result(workdir: Path) -> tuple[pl.DataFrame, list[bytes | None]]:
    rows = pl.read_parquet(workdir / "run" / "out.parquet")
    return rows, list(iter_images(rows["image"], workdir / "run" / "store", as_bytes=True))


@pytest.mark.parametrize("damage", ["deleted", "cut short"])
def test_a_step_whose_stored_images_are_damaged_is_recomputed(images_pm, workdir, damage):
    """Before, both steps were reused (the tar was not in any marker) and the images stayed lost."""
    table = sample_table(ROWS, duplicates=False)
    run_spec(spec(), workdir, tables={"data.parquet": table}, pm=images_pm)
    before_rows, before_images = result(workdir)
    assert before_rows["image_bytes"].null_count() == ROWS // 3
    marker = json.loads((tars(workdir)[1].parents[2] / "_COMPLETE.json").read_text())
    assert sorted(marker["images"]) == ["artifacts/shard-00000/00000.tar", "artifacts/shard-00001/00000.tar"]
    tar = tars(workdir)[1]
    if damage == "deleted":
        tar.unlink()
    else:
        tar.write_bytes(tar.read_bytes()[:1500])
    clear_cache()
    with pytest.warns(StoreWarning) as caught:
        manifest = run_spec(spec(), workdir, pm=images_pm)
    said = " ".join(str(w.message) for w in caught)
    assert "step 'store_images' is recomputed" in said and "shard 1 was recomputed" in said, said
    assert str(tar) in said
    assert [r["cached"] for r in manifest["steps"]] == [True, False, True]  # only the images' step runs
    after_rows, after_images = result(workdir)
    assert after_rows.equals(before_rows) and after_images == before_images
    again = run_spec(spec(), workdir, pm=images_pm)  # its marker records the new tar: reused, no warning
    assert all(r["cached"] for r in again["steps"])


def forget_images(workdir: Path) -> None:
    """The store as a curate before this change wrote it: no marker records the images (nor its
    input, which markers recorded later: curate.inputdigest)."""
    for marker in (workdir / "run" / "store").glob("*/_COMPLETE.json"):
        data = json.loads(marker.read_text())
        for field in ("images", "input_digest", "input_from"):
            data.pop(field, None)
        marker.write_text(json.dumps(data))
    for marker in (workdir / "run" / "store").glob("*/shards/*.json"):
        data = json.loads(marker.read_text())
        data.pop("images", None)
        marker.write_text(json.dumps(data))


@pytest.mark.parametrize("damage", ["deleted", "cut short"])
def test_a_step_reading_an_image_gone_from_the_store_fails_naming_it(images_pm, curate_main, write_spec,
                                                                    workdir, damage):
    """Before, every row read from the lost tar got a null and the run said complete."""
    write_spec(spec(reader=False), table=sample_table(ROWS, duplicates=False))
    assert curate_main("run", "spec.yaml").code == 0
    forget_images(workdir)
    tar = tars(workdir)[0]
    if damage == "deleted":
        tar.unlink()
    else:
        tar.write_bytes(tar.read_bytes()[:1500])
    clear_cache()
    write_spec(spec())
    run = curate_main("run", "spec.yaml")
    assert run.code == 1, run
    message = " ".join(run.stderr.split())
    assert "step 'image_sizes', shard 0 failed" in message, message
    assert str(tar) in message and "run's store" in message, message
    assert "hint: the images a step stored in the run's store are gone or damaged" in message, message
    assert "curate run SPEC --from store_images" in message, message
    assert "Traceback" not in run.stderr and "bug" not in message


def test_an_export_of_an_image_gone_from_the_store_says_so(images_pm, curate_main, write_spec, workdir):
    """Before: "check that …/shards can be written" (a deleted tar), "this is a bug in plugin
    'export'" (one cut short)."""
    outputs = [{"format": "webdataset", "path": "shards", "params": {"caption": "alt_text"}}]
    with_image = {"step": "filter", "params": {"where": "image IS NOT NULL", "reason": "no_image"}}
    write_spec(spec(reader=False, outputs=outputs, then=(with_image,)), table=sample_table(ROWS, duplicates=False))
    assert curate_main("run", "spec.yaml").code == 0
    forget_images(workdir)
    tar = tars(workdir)[1]
    tar.write_bytes(tar.read_bytes()[:1500])
    clear_cache()
    run = curate_main("run", "spec.yaml")
    assert run.code == 1, run
    message = " ".join(run.stderr.split())
    assert "output 'shards' (webdataset) failed" in message and str(tar) in message, message
    assert "curate run SPEC --from store_images" in message, message
    assert "can be written" not in message and "bug in plugin" not in message, message


def test_a_reference_outside_the_store_is_read_as_before(tmp_path):
    """Only the run's store is the steps' to keep whole: a shard elsewhere that is gone is what it
    was (a missing file), and a null reference is a row without an image."""
    store = tmp_path / "store"
    (store / "fp").mkdir(parents=True)  # a step's folder: what is under it is the step's
    elsewhere = tmp_path / "elsewhere" / "gone.tar"
    with pytest.raises(FileNotFoundError):
        read_image_bytes({"shard": str(elsewhere), "key": "k"}, store)
    with pytest.raises(FileNotFoundError):
        read_image_bytes({"shard": "../elsewhere/gone.tar", "key": "k"}, store)
    with pytest.raises(FileNotFoundError):  # no such folder in the store: not a step's, a missing file
        read_image_bytes({"shard": "other/gone.tar", "key": "k"}, store)
    with pytest.raises(ImageGone, match="does not exist"):
        read_image_bytes({"shard": "fp/artifacts/gone.tar", "key": "k"}, store)
    with pytest.raises(ImageGone, match="does not exist"):
        read_image_bytes({"shard": str(store / "fp" / "gone.tar"), "key": "k"}, store)
    assert read_image_bytes(None, store) is None
    assert not issubclass(ImageGone, (OSError, LookupError)) and issubclass(ImageNotFound, LookupError)
