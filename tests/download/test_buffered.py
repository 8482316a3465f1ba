"""Bodies waiting for img2dataset's decoder: its threads keep fetching while the process's one
decoding thread works, up to 2 x threads bodies of up to max_bytes each (4 GiB at the defaults).
``max_buffered_bytes`` bounds them; the budget is given back as the resizer takes each body."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
from curate_download.fetch import BodyBudget
from curate_download.step import DownloadParams
from pydantic import ValidationError

from tests.conftest import cli_env
from tests.download.conftest import run_download
from tests.download.hostile import serve_hostile
from tests.download.processes import peak_rss

ROOT = Path(__file__).resolve().parents[2]
MIB = 2**20
THREADS = 16
BODY = 16 * MIB  # each fat body: max_bytes exactly, so it is fetched, then refused by the decoder


@pytest.mark.network
@pytest.mark.slow
def test_bodies_waiting_for_the_decoder_stay_within_max_buffered_bytes(tmp_path: Path) -> None:
    """A host answers quickly with 16 MiB bodies, and now and then with an image that takes most
    of a second to decode: without a budget the fetched bodies pile up behind the decoder (2 x 16
    threads x 16 MiB = 512 MiB); with 32 MiB they stay within it, and every row still gets the
    decoder's verdict, none a timeout (so the resizer gives every body back)."""
    params = {"allow_private_networks": True, "timeout": 60, "threads": THREADS, "image_size": 32,
              "max_bytes": BODY, "max_buffered_bytes": 2 * BODY}
    with serve_hostile() as host:
        def table(filler: str) -> pl.DataFrame:
            urls = [f"{host.base_url}/slow-decode/s{i}" if i % 12 == 0 else filler.format(i) for i in range(36)]
            return pl.DataFrame({"url": urls, "alt_text": ["x"] * len(urls)})

        with peak_rss() as calm_peak:
            _, calm = run_download(tmp_path / "calm", table(host.base_url + "/ok/c{}.png"), params)
        with peak_rss() as fat_peak:
            _, rows = run_download(tmp_path / "fat", table(f"{host.base_url}/fat/{BODY}/f{{}}"), params)
    print(f"\npeak RSS of the worker tree: {fat_peak[0] / MIB:.0f} MiB with 16 MiB bodies, "
          f"{calm_peak[0] / MIB:.0f} MiB without")
    assert set(calm["status"]) == {"success"}
    assert rows.filter(pl.col("url").str.contains("/fat/"))["status"].unique().to_list() == ["failed_to_resize"]
    assert rows.filter(pl.col("url").str.contains("/slow-decode/"))["status"].unique().to_list() == ["success"]
    assert fat_peak[0] <= calm_peak[0] + 192 * MIB, (fat_peak, calm_peak)  # with each process's share


def test_reservations_are_first_come_first_served_and_whole() -> None:
    budget = BodyBudget()
    assert budget.reserve(60, 100, None) and budget.held == 60
    assert not budget.reserve(50, 100, deadline=0.0)  # does not fit, and the deadline has passed
    assert budget.held == 60  # a reservation that failed holds nothing
    budget.release(60)
    assert budget.reserve(100, 100, None) and budget.held == 100
    budget.release(150)  # more than held: a consumer's miscount never makes the budget negative
    assert budget.held == 0


def test_a_small_reservation_waits_behind_a_big_one() -> None:
    """While a body of max_bytes waits for room, smaller ones behind it wait too: otherwise a
    stream of small bodies could keep the budget from ever having room for it."""
    import threading
    import time

    budget = BodyBudget()
    assert budget.reserve(70, 100, None)
    order: list[str] = []
    big = threading.Thread(target=lambda: budget.reserve(100, 100, time.monotonic() + 30) and order.append("big"))
    big.start()
    while not budget._queue:  # the big one is waiting
        time.sleep(0.01)
    small = threading.Thread(target=lambda: budget.reserve(10, 100, time.monotonic() + 30) and order.append("small"))
    small.start()
    time.sleep(0.2)
    assert order == []  # 10 would fit beside 70, but the big one came first
    budget.release(70)
    big.join(10)
    assert order == ["big"]
    budget.release(100)
    small.join(10)
    assert order == ["big", "small"] and budget.held == 10


def test_max_buffered_bytes_holds_a_body_of_max_bytes() -> None:
    with pytest.raises(ValidationError, match="max_buffered_bytes .* must be at least max_bytes"):
        DownloadParams(max_bytes=64 * MIB, max_buffered_bytes=32 * MIB)
    assert DownloadParams().limits.max_buffered_bytes == 512 * MIB
    assert DownloadParams(max_bytes=1024 * MIB).limits.max_buffered_bytes == 1024 * MIB
    assert DownloadParams(max_buffered_bytes=64 * MIB).limits.max_buffered_bytes == 64 * MIB
    assert "max_buffered_bytes" not in DownloadParams(max_buffered_bytes=64 * MIB).fingerprint_dict()


SCRIPT = textwrap.dedent("""
    import threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *args): pass
        def do_GET(self):
            body = b"x" * 3000
            if self.path == "/redirect":  # a body urllib reads and drops: it must not stay reserved
                self.send_response(302)
                self.send_header("Location", "/a")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            if self.path != "/chunked":
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"%x\\r\\n%s\\r\\n0\\r\\n\\r\\n" % (len(body), body))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    from curate_download import fetch
    from curate_download.worker import NetworkPolicy, install
    install(NetworkPolicy(allow_private_networks=True), fetch.FetchLimits(max_bytes=4000, max_buffered_bytes=8000))
    import urllib.request
    base = f"http://127.0.0.1:{server.server_address[1]}"
    first = urllib.request.urlopen(base + "/redirect", timeout=2).read()
    second = urllib.request.urlopen(base + "/chunked", timeout=2).read()  # reserves max_bytes, keeps 3000
    print("held", fetch._budget.held)
    started = time.monotonic()
    try:
        urllib.request.urlopen(base + "/c", timeout=1).read()
    except Exception as exc:
        print("waited", type(exc).__name__, round(time.monotonic() - started), exc)
    print("held", fetch._budget.held)
    fetch.body_consumed(len(first))
    print("read", len(urllib.request.urlopen(base + "/d", timeout=2).read()), "held", fetch._budget.held)
""")


@pytest.mark.network
def test_a_fetch_waits_for_room_within_its_deadline(tmp_path: Path) -> None:
    """8000 bytes of budget: two 3000-byte bodies fit (one after a redirect, whose own body urllib
    reads and drops, the other chunked, which reserved max_bytes while it was read, then gave back
    what it did not use); a third waits, and fails at its deadline
    saying what it waited for; once a body is decoded the next one fits."""
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60,
                          env=cli_env([ROOT, ROOT / "plugins"]), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "held 6000"
    assert lines[1].startswith("waited DeadlineExceeded 1 timed out") and "max_buffered_bytes (8,000 bytes)" in lines[1]
    assert lines[2] == "held 6000"  # the attempt that timed out holds nothing
    assert lines[3] == "read 3000 held 6000"
