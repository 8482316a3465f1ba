"""curate.images reads confined to folders (``within``), and never waits on a pipe.

A run directory may come from someone else: its rows name the image files (``shard`` may be
absolute, hold ``..``, or be a link), so the report reads ``within`` the run directory. A trusted
spec's steps pass no ``within`` and read where the rows say, as before (an untrusted spec's:
tests/core/test_untrusted_images.py). A named pipe where a shard or a
member should be is an error at once, for everyone: opening one waits for a writer.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.images import ImageGone, ImageNotFound, ImageOutside, clear_cache, iter_images, read_image_bytes
from curate.runfiles import NotRegularFile

INSIDE, SECRET = b"inside image bytes", b"SECRET image bytes"


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose store holds images and links, beside a folder of someone's own pictures:

        outside/secret.tar, outside/pics/k.jpg             (SECRET: never to be read within run/)
        run/store/images.tar, run/store/pics/k.jpg         (INSIDE)
        run/store/out.tar -> outside/secret.tar, run/store/outdir -> outside/pics
        run/store/links/k.jpg -> outside/pics/k.jpg        (a member that is a link out)
        run/store/inlink.tar -> images.tar                 (a link that stays inside)
    """
    root = tmp_path_factory.mktemp("confinement")
    write_tar(root / "outside" / "secret.tar", {"k.jpg": SECRET})
    (root / "outside" / "pics").mkdir()
    (root / "outside" / "pics" / "k.jpg").write_bytes(SECRET)
    store = root / "run" / "store"
    write_tar(store / "images.tar", {"k.jpg": INSIDE})
    (store / "pics").mkdir()
    (store / "pics" / "k.jpg").write_bytes(INSIDE)
    (store / "out.tar").symlink_to(root / "outside" / "secret.tar")
    (store / "outdir").symlink_to(Path("..") / ".." / "outside" / "pics")
    (store / "links").mkdir()
    (store / "links" / "k.jpg").symlink_to(root / "outside" / "pics" / "k.jpg")
    (store / "inlink.tar").symlink_to("images.tar")
    clear_cache()
    return root


def read_within(layout: Path, shard: str) -> bytes | None:
    return read_image_bytes({"shard": shard, "key": "k"}, layout / "run" / "store", within=[layout / "run"])


@pytest.mark.parametrize("shard", ["{root}/outside/secret.tar", "{root}/outside/pics", "../../outside/secret.tar",
                                   "../../outside/pics", "out.tar", "outdir", "links", "pics/../../../outside/pics"])
def test_a_shard_that_leads_out_of_the_allowed_folders_is_refused(layout: Path, shard: str):
    with pytest.raises(ImageOutside, match="lies outside") as refused:
        read_within(layout, shard.format(root=layout))
    assert refused.value.path.is_relative_to(layout.resolve() / "outside")  # where it really lies, for the report


@pytest.mark.parametrize("shard", ["images.tar", "pics", "inlink.tar", "{root}/run/store/images.tar",
                                   "{root}/run/store/pics", "../store/pics"])
def test_a_shard_inside_is_read_however_it_is_written(layout: Path, shard: str):
    # absolute inside: the experiment points rows at RUN_DIR/world/images
    assert read_within(layout, shard.format(root=layout)) == INSIDE


def test_without_within_a_shard_is_read_where_the_row_says(layout: Path):
    """A trusted spec's steps read where their rows say (the download step may write an absolute shard)."""
    store = layout / "run" / "store"
    assert read_image_bytes({"shard": str(layout / "outside" / "secret.tar"), "key": "k"}, store) == SECRET
    assert read_image_bytes({"shard": "outdir", "key": "k"}, store) == SECRET
    assert list(iter_images([{"shard": "links", "key": "k"}, None], store, as_bytes=True)) == [SECRET, None]


def test_a_refusal_opens_nothing(tmp_path: Path):
    """Refused before it is opened: a pipe outside would otherwise be waited on."""
    (tmp_path / "run").mkdir()
    os.mkfifo(tmp_path / "pipe.tar")
    outcome = without_waiting(lambda: read_image_bytes({"shard": str(tmp_path / "pipe.tar"), "key": "k"},
                                                       tmp_path / "run", within=[tmp_path / "run"]),
                              tmp_path / "pipe.tar")
    assert isinstance(outcome, ImageOutside), outcome


def test_image_outside_survives_pickling(layout: Path):
    with pytest.raises(ImageOutside) as refused:
        read_within(layout, "out.tar")
    copy = pickle.loads(pickle.dumps(refused.value))
    assert str(copy) == str(refused.value) and copy.path == refused.value.path and copy.hint == refused.value.hint


SEGMENTS = ["..", ".", "run", "store", "outside", "images.tar", "secret.tar", "pics", "out.tar", "outdir",
            "links", "inlink.tar"]


@settings(max_examples=300, deadline=None)
@given(absolute=st.booleans(), segments=st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=6))
def test_no_shard_reads_a_file_outside(layout: Path, absolute: bool, segments: list[str]):
    """Whatever path a row writes, a read within run/ gives the run's image or an error, never
    the bytes of the picture outside; a refusal names a file that really lies outside, and what
    lies inside (the shard, links resolved) is never refused for being outside."""
    shard = "/".join([str(layout), *segments] if absolute else segments)
    real = Path(os.path.realpath(shard if absolute else layout / "run" / "store" / shard))
    run = layout.resolve() / "run"
    try:
        data = read_within(layout, shard)
    except ImageOutside as refused:
        assert not refused.path.is_relative_to(run)
        assert not real.is_relative_to(run) or refused.path.parent.parent == layout.resolve() / "outside"  # links/k.jpg
        return
    except (OSError, ImageNotFound, ImageGone, tarfile.TarError):
        return  # not there, a folder without the key, not a tar
    assert data == INSIDE and real.is_relative_to(run)


# -- pipes --------------------------------------------------------------------------------------

def without_waiting(call: Callable[[], Any], pipe: Path) -> Any:
    """What ``call`` returned or raised; if it is still waiting on ``pipe`` after a minute (a
    hang, not a slow read), open the pipe's other end so the thread ends, and fail."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # noqa: BLE001 - the caller looks at what was raised
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))  # the reader sees end of file
        thread.join(60)
        pytest.fail(f"reading {pipe} waited for a writer")
    return outcome[0]


@pytest.mark.parametrize("within", [False, True])
@pytest.mark.parametrize("how", ["pipe", "link to a pipe"])
def test_a_pipe_in_place_of_a_shard_is_an_error_not_a_wait(tmp_path: Path, within: bool, how: str):
    store = tmp_path / "store"
    store.mkdir()
    os.mkfifo(store / "pipe")
    if how == "link to a pipe":
        (store / "00000.tar").symlink_to("pipe")
    else:
        (store / "pipe").rename(store / "00000.tar")
    clear_cache()
    outcome = without_waiting(lambda: read_image_bytes({"shard": "00000.tar", "key": "k"}, store,
                                                       within=[tmp_path] if within else None), store / "00000.tar")
    assert isinstance(outcome, NotRegularFile), outcome
    assert "is a pipe (FIFO)" in str(outcome)


def test_a_pipe_in_place_of_a_member_is_an_error_not_a_wait(tmp_path: Path):
    """A folder shard's member that turns into a pipe after the folder was indexed (the index
    itself lists regular files only)."""
    shard = tmp_path / "pics"
    shard.mkdir()
    (shard / "k.jpg").write_bytes(INSIDE)
    os.mkfifo(shard / "p.jpg")
    clear_cache()
    assert read_image_bytes({"shard": str(shard), "key": "k"}) == INSIDE
    with pytest.raises(ImageNotFound):  # listed as no image at all
        read_image_bytes({"shard": str(shard), "key": "p"})
    indexed = shard.stat()
    (shard / "k.jpg").unlink()
    os.mkfifo(shard / "k.jpg")
    os.utime(shard, ns=(indexed.st_atime_ns, indexed.st_mtime_ns))  # the index kept for the folder still lists k
    assert shard.stat().st_size == indexed.st_size
    outcome = without_waiting(lambda: read_image_bytes({"shard": str(shard), "key": "k"}), shard / "k.jpg")
    assert isinstance(outcome, NotRegularFile), outcome
