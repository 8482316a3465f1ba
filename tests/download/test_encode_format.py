"""``encode_format: png`` works with the default ``encode_quality`` (a JPEG quality of 95, which
img2dataset refused as a PNG level only once its processes ran: the step failed with the tail of
a multiprocessing traceback), and a PNG level over 9 is a params error before anything runs."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from curate_download.step import PNG_LEVEL, Download, DownloadParams
from pydantic import ValidationError


def _quality(tmp_path: Path, **params: object) -> int:
    return Download(DownloadParams(**params))._job(tmp_path, (1, 1))["encode_quality"]


def test_png_without_a_level_gets_one_img2dataset_takes(tmp_path: Path) -> None:
    quality = _quality(tmp_path, encode_format="png")
    assert quality == PNG_LEVEL == 6
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        patch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")
        warnings.simplefilter("ignore", DeprecationWarning)  # img2dataset imports imghdr
        resizer = pytest.importorskip("img2dataset.resizer")
        resizer.Resizer(image_size=8, resize_mode="no", resize_only_if_bigger=False, encode_format="png",
                        encode_quality=quality)  # raised ValueError for 95
    assert _quality(tmp_path, encode_format="png", encode_quality=9) == 9
    assert _quality(tmp_path) == _quality(tmp_path, encode_format="webp") == 95  # as before


def test_a_png_level_over_nine_is_refused_saying_what_it_is() -> None:
    refusal = r"zlib's compression level for encode_format png, 0-9 \(got 95\)"
    with pytest.raises(ValidationError, match=refusal):
        DownloadParams(encode_format="png", encode_quality=95)
    assert DownloadParams(encode_format="jpg", encode_quality=95).encode_quality == 95
