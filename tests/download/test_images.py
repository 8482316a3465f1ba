"""curate.images reads what the download step stores: tar members and files, by {shard, key}."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import polars as pl
import pytest
from curate_download import store
from PIL import Image as PILImage

from curate.images import (ImageGone, ImageNotFound, clear_cache, image_reader, iter_images, open_image,
                           open_images, read_image_bytes)
from curate.schema import Image


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (12, 8)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, color).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.fixture
def images() -> dict[str, bytes]:
    return {f"uid{i:02d}": jpeg((i * 20, 255 - i * 20, 7)) for i in range(10)}


@pytest.fixture
def tar_store(tmp_path: Path, images: dict[str, bytes]) -> Path:
    (tmp_path / "step" / "artifacts").mkdir(parents=True)
    members = {}
    for key, data in images.items():
        members[f"{key}.jpg"] = data
        members[f"{key}.json"] = b"{}"  # webdataset neighbours are skipped, not mistaken for images
    write_tar(tmp_path / "step" / "artifacts" / "00000.tar", members)
    clear_cache()
    return tmp_path


def test_round_trip_bytes_and_pixels(tar_store: Path, images: dict[str, bytes]) -> None:
    shard = "step/artifacts/00000.tar"
    for key, data in images.items():
        assert read_image_bytes({"shard": shard, "key": key}, tar_store) == data
    opened = open_image((shard, "uid03"), tar_store)
    assert opened is not None and opened.size == (12, 8)
    assert opened.getpixel((5, 4)) == PILImage.open(io.BytesIO(images["uid03"])).getpixel((5, 4))


def test_iter_images_keeps_order_and_nulls(tar_store: Path, images: dict[str, bytes]) -> None:
    keys = ["uid07", None, "uid01", "uid07", "uid00"]
    column = pl.Series("image", [None if k is None else {"shard": "step/artifacts/00000.tar", "key": k} for k in keys],
                       dtype=Image)
    got = list(iter_images(column, tar_store, as_bytes=True))
    assert got == [None if k is None else images[k] for k in keys]
    pil = open_images(column, tar_store)
    assert [p is None for p in pil] == [k is None for k in keys]


def test_absolute_shard_paths_need_no_store(tar_store: Path, images: dict[str, bytes]) -> None:
    shard = str(tar_store / "step" / "artifacts" / "00000.tar")
    assert read_image_bytes({"shard": shard, "key": "uid05"}) == images["uid05"]


def test_broken_references_say_what_is_missing(tar_store: Path) -> None:
    """In the run's store, a lost image is the store's damage (ImageGone, with how to store it
    again); outside it, a missing file or key is what it always was."""
    with pytest.raises(ImageGone, match="holds no image 'uid99'"):
        read_image_bytes({"shard": "step/artifacts/00000.tar", "key": "uid99"}, tar_store)
    with pytest.raises(ImageGone, match="00042.tar does not exist .*run's store"):
        read_image_bytes({"shard": "step/artifacts/00042.tar", "key": "uid01"}, tar_store)
    outside = tar_store / "step" / "artifacts"
    with pytest.raises(ImageNotFound, match="uid99"):
        read_image_bytes({"shard": str(outside / "00000.tar"), "key": "uid99"}, outside / "other-store")
    with pytest.raises(FileNotFoundError, match="00042.tar does not exist"):
        read_image_bytes({"shard": str(outside / "00042.tar"), "key": "uid01"}, outside / "other-store")


def test_image_reader_reads_on_after_an_image_that_is_not_there(tar_store: Path,
                                                                images: dict[str, bytes]) -> None:
    """One read at a time, each raising on its own (image_filter drops the row and goes on), with
    the shard kept open between reads as iter_images keeps it."""
    outside = str(tar_store / "step" / "artifacts" / "00000.tar")
    with image_reader(tar_store / "other-store") as read:
        assert read({"shard": outside, "key": "uid02"}) == images["uid02"]
        with pytest.raises(ImageNotFound, match="uid99"):
            read({"shard": outside, "key": "uid99"})
        with pytest.raises(FileNotFoundError):
            read({"shard": str(tar_store / "nowhere.tar"), "key": "uid01"})
        assert read(None) is None
        assert read({"shard": outside, "key": "uid07"}) == images["uid07"]
    with image_reader(tar_store) as read, pytest.raises(ImageGone):  # the run's store damaged, not a row
        read({"shard": "step/artifacts/00000.tar", "key": "uid99"})


def test_a_rewritten_tar_is_indexed_again(tar_store: Path) -> None:
    path = tar_store / "step" / "artifacts" / "00000.tar"
    ref = {"shard": "step/artifacts/00000.tar", "key": "uid01"}
    read_image_bytes(ref, tar_store)
    replacement = jpeg((1, 2, 3), (30, 30))
    write_tar(path, {"zzz.jpg": b"x" * 100, "uid01.jpg": replacement})
    os.utime(path, ns=(1, 1))  # a different mtime even within one filesystem tick
    assert read_image_bytes(ref, tar_store) == replacement


def test_files_layout(tmp_path: Path, images: dict[str, bytes]) -> None:
    folder = tmp_path / "artifacts" / "00000"
    folder.mkdir(parents=True)
    for key, data in images.items():
        (folder / f"{key}.jpg").write_bytes(data)
    clear_cache()
    refs = [{"shard": "artifacts/00000", "key": k} for k in sorted(images)]
    assert open_images(refs, tmp_path, as_bytes=True) == [images[k] for k in sorted(images)]


def test_rekey_names_members_by_uid_in_key_order(tmp_path: Path, images: dict[str, bytes]) -> None:
    """img2dataset's tar (position keys, completion order) becomes <uid>.jpg in input order."""
    shard_dir = tmp_path / "shard-00000"
    (shard_dir / store.I2D_DIR).mkdir(parents=True)
    uids = sorted(images, reverse=True)  # uid order differs from key order on purpose
    keys = [f"{i:09d}" for i in range(len(uids))]
    completion_order = list(zip(keys, uids))[::3] + list(zip(keys, uids))[1::3] + list(zip(keys, uids))[2::3]
    members = {}
    for key, uid in completion_order:
        members[f"{key}.jpg"] = images[uid]
        members[f"{key}.json"] = b'{"key": "%s"}' % key.encode()
    write_tar(shard_dir / store.I2D_DIR / "00000.tar", members)
    store.rekey(shard_dir, 0, "webdataset", "jpg", dict(zip(keys, uids)))
    assert not (shard_dir / store.I2D_DIR / "00000.tar").exists()
    with tarfile.open(shard_dir / "00000.tar") as archive:
        names = archive.getnames()
        assert names == [f"{uid}.jpg" for uid in uids]
        assert all(archive.extractfile(f"{uid}.jpg").read() == images[uid] for uid in uids)  # type: ignore[union-attr]
    store.rekey(shard_dir, 0, "webdataset", "jpg", dict(zip(keys, uids)))  # idempotent after success
    clear_cache()
    assert read_image_bytes({"shard": "shard-00000/00000.tar", "key": uids[4]}, tmp_path) == images[uids[4]]


@pytest.mark.parametrize("tar_format", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_header_index_agrees_with_tarfile(tmp_path: Path, tar_format: int, images: dict[str, bytes]) -> None:
    """The direct header reader and tarfile find the same members, whatever the tar dialect."""
    from curate.images import _index_tar, _index_tar_slowly

    path = tmp_path / "mixed.tar"
    with tarfile.open(path, "w", format=tar_format) as archive:
        folder = tarfile.TarInfo("folder")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        for index, (key, data) in enumerate(images.items()):
            name = f"{'d' * 120}/{key}.jpg" if index == 3 else f"folder/{key}.png" if index == 4 else f"{key}.jpg"
            info = tarfile.TarInfo(name)
            info.size = len(data) + index  # sizes that are not multiples of the block size
            archive.addfile(info, io.BytesIO(data + b"\0" * index))
    with open(path, "rb") as handle:
        assert _index_tar(path) == _index_tar_slowly(handle)
    assert len(_index_tar(path)) == len(images)
