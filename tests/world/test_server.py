"""Real HTTP against the loopback server: every fault behaves as specified, and the server is gone
when its context ends."""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import polars as pl
import pytest
from curate_world.errors import WorldError
from curate_world.generate import World
from curate_world.server import MAX_SLOW_SECONDS, WorldServer, serve_world
from PIL import Image

from .conftest import read

pytestmark = pytest.mark.network
SLOW = 1.0  # a client that gives up after SLOW / 10 has 0.9 s to do it, even on a loaded machine


@pytest.fixture(scope="module")
def server(small_world: World) -> Iterator[WorldServer]:
    with serve_world(small_world.dir, slow_seconds=SLOW) as running:
        yield running


def url_with(world: World, fault: str) -> tuple[str, bytes]:
    row = read(world).filter(pl.col("fault") == fault).row(0, named=True)
    return row["url_path"], (world.dir / row["image_path"]).read_bytes()


def get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read(), response.geturl()
    except urllib.error.HTTPError as error:
        error.close()  # it holds the response's socket; unclosed, it is a ResourceWarning
        raise


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_plain_image(server: WorldServer, small_world: World) -> None:
    path, data = url_with(small_world, "none")
    status, headers, body, _ = get(server.url(path))
    assert (status, headers["Content-Type"], body) == (200, "image/jpeg", data)
    assert "X-Robots-Tag" not in headers


@pytest.mark.parametrize("fault", ["404", "500"])
def test_error_statuses(server: WorldServer, small_world: World, fault: str) -> None:
    path, _ = url_with(small_world, fault)
    with pytest.raises(urllib.error.HTTPError) as error:
        get(server.url(path))
    assert error.value.code == int(fault)


def test_slow_is_slower_than_a_short_timeout_but_arrives(server: WorldServer, small_world: World) -> None:
    path, data = url_with(small_world, "slow")
    started = time.perf_counter()
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        get(server.url(path), timeout=SLOW / 10)
    assert time.perf_counter() - started < SLOW
    started = time.perf_counter()
    assert get(server.url(path))[2] == data
    assert time.perf_counter() - started >= SLOW


def test_truncated_is_a_broken_image(server: WorldServer, small_world: World) -> None:
    path, data = url_with(small_world, "truncated")
    status, headers, body, _ = get(server.url(path))
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert int(headers["Content-Length"]) == len(body) < len(data) and data.startswith(body)
    with pytest.raises(OSError), Image.open(io.BytesIO(body)) as image:
        image.load()


def test_not_image_is_html(server: WorldServer, small_world: World) -> None:
    path, _ = url_with(small_world, "not_image")
    status, headers, body, _ = get(server.url(path))
    assert (
        status == 200
        and headers["Content-Type"].startswith("text/html")
        and body.startswith(b"<!doctype html>")
    )


def test_oversized_is_a_real_4000px_image(server: WorldServer, small_world: World) -> None:
    path, _ = url_with(small_world, "oversized")
    status, _, body, _ = get(server.url(path))
    with Image.open(io.BytesIO(body)) as image:
        assert (status, image.size, image.format) == (200, (4000, 4000), "JPEG")


def test_redirect_reaches_the_image(server: WorldServer, small_world: World) -> None:
    path, data = url_with(small_world, "redirect")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("GET", path)
    first = connection.getresponse()
    assert first.status == 302 and first.getheader("Location").startswith("/raw/")
    connection.close()
    status, _, body, final_url = get(server.url(path))
    assert (status, body) == (200, data) and final_url != server.url(path)


def test_redirect_loop_never_ends(server: WorldServer, small_world: World) -> None:
    path, _ = url_with(small_world, "redirect_loop")
    with pytest.raises(urllib.error.HTTPError, match="infinite loop"):
        get(server.url(path))


def test_noai_is_a_valid_image_with_the_opt_out_header(server: WorldServer, small_world: World) -> None:
    path, data = url_with(small_world, "noai")
    status, headers, body, _ = get(server.url(path))
    assert (status, body) == (200, data) and "noai" in headers["X-Robots-Tag"]


def test_other_routes(server: WorldServer, small_world: World) -> None:
    evaluation = read(small_world, "eval.parquet").row(0, named=True)
    assert (
        get(server.url(evaluation["url_path"]))[2]
        == (small_world.dir / evaluation["image_path"]).read_bytes()
    )
    assert b'"version"' in get(server.url("/world.json"))[2]
    for missing in ("/img/nope.jpg", "/eval/../world.json", "/elsewhere", "/raw/nope.jpg"):
        with pytest.raises(urllib.error.HTTPError) as error:
            get(server.url(missing))
        assert error.value.code == 404
    request = urllib.request.Request(server.url(url_with(small_world, "none")[0]), method="HEAD")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert (
            response.status == 200 and int(response.headers["Content-Length"]) > 0 and response.read() == b""
        )


def test_server_is_quiet(server: WorldServer, small_world: World, capfd: pytest.CaptureFixture[str]) -> None:
    get(server.url(url_with(small_world, "none")[0]))
    with pytest.raises(TimeoutError):  # a client that gives up mid-request must not print a traceback
        get(server.url(url_with(small_world, "slow")[0]), timeout=0.1)
    # once the handler has answered the client that left (a fixed sleep ended before that on a
    # loaded machine, and the test passed without looking)
    wait_for(lambda: not request_threads(server.port), "the slow request's handler to finish")
    assert capfd.readouterr() == ("", "")


def server_threads(port: int) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(f"world-server-{port}")]


def request_threads(port: int) -> list[str]:
    """The server's handler threads that are still serving a request."""
    return [name for name in server_threads(port) if name.endswith("-request")]


def wait_for(condition: Callable[[], object], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.01)


def test_server_stops_with_its_context_even_on_error(small_world: World) -> None:
    with pytest.raises(RuntimeError), serve_world(small_world.dir) as running:
        port = running.port
        assert running.base_url == f"http://127.0.0.1:{port}" and port_is_open(port)
        get(running.url("/world.json"))
        assert server_threads(port)
        raise RuntimeError("boom")
    assert not port_is_open(port)
    assert server_threads(port) == []


def test_closing_wakes_slow_requests(small_world: World) -> None:
    path, _ = url_with(small_world, "slow")
    errors: list[BaseException] = []
    with serve_world(small_world.dir, slow_seconds=MAX_SLOW_SECONDS) as running:
        client = threading.Thread(target=lambda: _expect_failure(running.url(path), errors))
        client.start()
        wait_for(lambda: request_threads(running.port), "the request to reach the handler")
        started = time.perf_counter()
    # close() also joins the thread that makes oversized images: on a loaded machine that took 15 s
    # (a 4000 px JPEG half made); a close() that waited for the sleeping handler takes 120 s
    assert time.perf_counter() - started < MAX_SLOW_SECONDS / 2, "close() waited for a sleeping handler"
    client.join(60)
    assert not client.is_alive() and len(errors) == 1
    # the server hung up on the client; it neither answered nor kept it waiting (TimeoutError)
    assert isinstance(errors[0], ConnectionError), repr(errors[0])


def _expect_failure(url: str, errors: list[BaseException]) -> None:
    try:
        get(url, timeout=MAX_SLOW_SECONDS / 2)
    except OSError as exc:  # the server hangs up without an answer (RemoteDisconnected)
        errors.append(exc)


def test_busy_port_and_bad_settings_are_clear_errors(server: WorldServer, small_world: World) -> None:
    with (
        pytest.raises(WorldError, match=f"127.0.0.1:{server.port}"),
        serve_world(small_world.dir, port=server.port),
    ):
        pass
    with pytest.raises(WorldError, match="slow_seconds"), serve_world(small_world.dir, slow_seconds=-1):
        pass
    with pytest.raises(WorldError, match="not a world directory"), serve_world(small_world.dir / "images"):
        pass
