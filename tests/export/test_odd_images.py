"""Exports write the picture every step saw, and leave out (counted, warned of) a row whose image
does not decode: a truncated PNG failed the whole webdataset export with a hint about the folder's
permissions, and a JPEG turned by its EXIF orientation went out as it was stored (sideways to a
loader that ignores EXIF), while CLIP scored it upright."""

from __future__ import annotations

import io
import tarfile

import polars as pl
import pytest
from curate_export.sinks import ExportWarning, WebDatasetSink
from PIL import Image

from curate.images import clear_cache
from tests.export.test_sinks import WEBDATASET_LEAKS, write
from tests.odd_images import GREY, plain_jpeg, write_odd_images


@WEBDATASET_LEAKS
def test_odd_files_are_exported_as_seen_or_left_out_counted(tmp_path):
    refs = write_odd_images(tmp_path / "images")
    clear_cache()
    keys = ["transparent", "rotated", "plain", "bomb", "truncated", "html"]
    table = pl.DataFrame({"uid": keys, "image": [refs[key] for key in keys], "caption": keys})
    with pytest.warns(ExportWarning, match=r"left out 3 of 6 rows: their image does not decode"):
        facts, out = write(WebDatasetSink, table, tmp_path, tmp_path)
    assert (facts["rows"], facts["rows_with_unreadable_image"], facts["rows_without_image"]) == (3, 3, 0)
    with tarfile.open(out / "00000.tar") as tar:
        jpgs = {m.name.split(".")[0]: tar.extractfile(m).read() for m in tar if m.name.endswith(".jpg")}
    assert sorted(jpgs) == ["plain", "rotated", "transparent"]
    assert jpgs["plain"] == plain_jpeg()  # a whole, unturned JPEG is written as it is
    transparent = Image.open(io.BytesIO(jpgs["transparent"]))
    assert min(transparent.getpixel((2, 4))) > 245 and max(transparent.getpixel((12, 4))) < GREY[0] + 8
    rotated = Image.open(io.BytesIO(jpgs["rotated"]))
    assert rotated.size == (16, 32) and rotated.getexif().get(0x0112, 1) == 1
    assert rotated.getpixel((12, 4))[0] > 200
