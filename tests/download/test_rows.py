"""Every row leaves the download step with a status and, unless it succeeded, a reason."""

from __future__ import annotations

import http.client
import socket
import threading
from pathlib import Path

import polars as pl
import pytest
from curate_download import store
from curate_download.fetch import BoundedHTTPConnection, is_transient
from curate_download.step import Download, DownloadParams, _error, _status

from curate.step import StepContext
from tests.download.conftest import NO_STALL_TIMEOUT, run_download
from tests.download.hostile import serve_hostile

pytestmark = pytest.mark.network


def test_rows_without_a_url_get_missing_url(tmp_path: Path) -> None:
    table = pl.DataFrame({"url": [None, "", "   ", "http://127.0.0.1:9/a.png"], "alt_text": list("abcd")},
                         schema={"url": pl.Utf8, "alt_text": pl.Utf8})
    _, rows = run_download(tmp_path, table, {"timeout": 1})
    assert rows["status"].to_list() == ["missing_url"] * 3 + ["refused"]
    assert all("no URL" in message for message in rows["error_message"][:3])


def test_a_url_column_of_nulls_only(tmp_path: Path) -> None:
    """A source whose url column holds nothing but nulls comes typed Null; the step used to fail on it."""
    table = pl.DataFrame({"url": pl.Series([None] * 334, dtype=pl.Null), "alt_text": [f"t{i}" for i in range(334)]})
    _, rows = run_download(tmp_path, table, {"timeout": 1})
    assert rows.height == 334 and set(rows["status"]) == {"missing_url"}
    assert rows["error_message"].null_count() == 0


def test_a_row_img2dataset_lost_still_gets_a_status(tmp_path: Path) -> None:
    """img2dataset skips a row whose processing raised (it prints and moves on). Simulate that
    with a finished part missing one row: the re-run reads the part back, and the lost row gets
    failed_to_download with a reason instead of no status at all."""
    params = {"allow_private_networks": True, "timeout": NO_STALL_TIMEOUT, "image_size": 32}
    with serve_hostile() as host:
        table = pl.DataFrame({"url": [f"{host.base_url}/ok/n{i}.png" for i in range(5)], "alt_text": list("abcde")})
        manifest, rows = run_download(tmp_path, table, params)
    assert set(rows["status"]) == {"success"}
    step_dir = Path(next(r for r in manifest["steps"] if r["label"] == "download")["path"])
    shard_dir = step_dir / "artifacts" / "shard-00000"
    lost = rows["uid"][2]
    results = pl.read_parquet(store.results_path(shard_dir, 0))
    results.filter(pl.col("uid") != lost).write_parquet(store.results_path(shard_dir, 0))
    # the shard again, as the engine runs it after a crash; img2dataset has nothing left to do
    step = Download(DownloadParams(**params))
    ctx = StepContext(run_dir=tmp_path, label="download", seed=0, artifacts=step_dir / "artifacts", shard=0,
                      extras={"step_dir": str(step_dir), "store_dir": manifest["store_dir"]})
    again = step.process_shard(rows.select("uid", "url", "alt_text"), ctx)
    assert again.height == 5 and again["status"].null_count() == 0
    row = again.filter(pl.col("uid") == lost)
    assert row["status"].to_list() == ["failed_to_download"]
    assert "img2dataset reported nothing for this row" in row["error_message"][0]


OPENCV_TOO_MANY_PIXELS = ("OpenCV(4.14.0) /io/opencv/modules/imgcodecs/src/loadsave.cpp:79: error: "
                          "(-215:Assertion failed) pixels <= CV_IO_MAX_IMAGE_PIXELS in function "
                          "'validateInputImageSize'\n")


@pytest.mark.parametrize("message", [
    OPENCV_TOO_MANY_PIXELS,
    OPENCV_TOO_MANY_PIXELS.replace("pixels <= CV_IO_MAX_IMAGE_PIXELS", "size.width <= CV_IO_MAX_IMAGE_WIDTH"),
])
@pytest.mark.parametrize("max_image_area", [50_000_000, None])
def test_opencv_refusing_a_size_is_image_too_large(message: str, max_image_area: float | None) -> None:
    result = pl.DataFrame({"status": ["failed_to_resize", "failed_to_resize"],
                           "error_message": [message, "OpenCV(4.14.0) RGBE read error in function 'x'"]})
    rows = result.select(_status(), _error(max_image_area))
    assert rows["status"].to_list() == ["image_too_large", "failed_to_resize"]
    assert "CV_IO" not in rows["error_message"][0] and "OpenCV refused to decode" in rows["error_message"][0]
    assert ("max_image_area (50,000,000 pixels)" in rows["error_message"][0]) == (max_image_area is not None)
    assert rows["error_message"][1] == result["error_message"][1]


@pytest.mark.parametrize(("reply", "message"), [
    (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "the server sent no HTTP status line (an HTTP/0.9 or non-HTTP reply); "
                                      "it began with '\\x89PNG\\r\\n'"),
    (b"HTTP/1.1 two hundred OK\r\n\r\n",
     "the server sent an invalid HTTP status line: 'HTTP/1.1 two hundred OK\\r\\n'"),
])
def test_a_reply_without_a_status_line_gets_a_readable_message(reply: bytes, message: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(reply)

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        connection = BoundedHTTPConnection("127.0.0.1", server.getsockname()[1], timeout=5)
        connection.request("GET", "/a.png")
        with pytest.raises(http.client.BadStatusLine) as raised:
            connection.getresponse()
        connection.close()
        thread.join()
    assert str(raised.value) == message and str(raised.value).isprintable()
    assert not is_transient(raised.value)


def test_unreadable_replies_and_undecodable_sizes_get_their_status(tmp_path: Path) -> None:
    params = {"allow_private_networks": True, "timeout": NO_STALL_TIMEOUT, "image_size": 32}
    with serve_hostile() as host:
        urls = [f"{host.base_url}/{path}" for path in ("ok/fine.png", "no-status-line/a", "hdr-huge/b")]
        _, rows = run_download(tmp_path, pl.DataFrame({"url": urls, "alt_text": list("abc")}), params)
    print(rows.select("status", "error_message"))
    assert rows["status"].to_list() == ["success", "failed_to_download", "image_too_large"]
    assert rows["error_message"][1].startswith("the server sent no HTTP status line")
    assert rows["error_message"][2].startswith("image area larger than max_image_area (50,000,000 pixels): "
                                               "OpenCV refused to decode the image")
    assert all(message.isprintable() for message in rows["error_message"].drop_nulls())
