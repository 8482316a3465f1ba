"""Reading objects that change under curate: the local copy of an object is the version its
listing named, or there is none. Against moto's S3 server on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate import remote
from curate.errors import StorageError
from tests.storage.conftest import S3

pytestmark = pytest.mark.network


def _listed(s3: S3, key: str) -> dict:
    [(url, entry)] = remote.list_files(s3.url(key), lambda name: True)
    return entry


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_an_unchanged_object_is_downloaded_once(s3: S3, tmp_path: Path) -> None:
    s3.put("data/a.bin", b"version one")
    entry = _listed(s3, "data/a.bin")
    local = remote.download(s3.url("data/a.bin"), entry, tmp_path)
    assert local.read_bytes() == b"version one"
    assert remote.download(s3.url("data/a.bin"), entry, tmp_path) == local
    assert _files(tmp_path) == [local]


@pytest.mark.parametrize("replacement, detail", [
    (b"x" * 3_000_000, "more than 11 bytes arrived"),  # stopped at the first block past the listed size
    (b"version two", "it is now 11 bytes, version"),  # same size: the ETag tells
    (b"v2", "2 bytes were read"),
], ids=["grew", "same size", "shrank"])
def test_an_object_replaced_after_its_listing_is_an_error(s3: S3, tmp_path: Path, replacement: bytes,
                                                          detail: str) -> None:
    """The copy used to be the new bytes, cached under the listed version's key: a run whose
    fingerprints named one version read another, and later runs kept reading it from the cache.
    Now the read stops (at the listed size, for an object that grew) and nothing is kept."""
    s3.put("data/a.bin", b"version one")
    entry = _listed(s3, "data/a.bin")
    s3.put("data/a.bin", replacement)
    with pytest.raises(StorageError, match="the object changed while it was read") as failure:
        remote.download(s3.url("data/a.bin"), entry, tmp_path)
    assert s3.url("data/a.bin") in str(failure.value) and "listed as 11 bytes" in str(failure.value)
    assert detail in str(failure.value)
    assert "run again" in failure.value.hint
    assert _files(tmp_path) == []
