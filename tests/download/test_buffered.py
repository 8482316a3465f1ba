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
from curate_download.fetch import BodyBudget, Reading
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


def test_a_reader_holds_what_it_has_read_and_the_decoder_frees_it() -> None:
    budget = BodyBudget()
    reading = Reading()
    assert budget.grow(reading, 30, 100, 40, None) and budget.grow(reading, 20, 100, 40, None)
    assert budget.held == 50 and budget.shares() == (50, 0)
    budget.done(reading, keep=45)  # 45 bytes read: 5 reserved and unused go back
    assert budget.held == 45 and budget.shares() == (0, 45)
    budget.release(100)  # more than held: a consumer's miscount never makes the budget negative
    assert budget.held == 0


def test_past_the_spare_one_reader_at_a_time_finishes_first_come_first_served() -> None:
    """Readers grow freely while max_bytes stays spare; past that, one reader (the finisher) may
    use the spare, so some reader can always read a whole body whatever the others hold."""
    import threading
    import time

    budget, order = BodyBudget(), []
    first, second, third = Reading(), Reading(), Reading()
    assert budget.grow(first, 60, 100, 40, None)  # 60 = 100 - 40: within the general share
    assert budget.grow(second, 10, 100, 40, None) and second.finisher  # past it: the finisher
    budget.done(first, keep=60)  # waiting for the decoder
    waiting = threading.Thread(target=lambda: budget.grow(third, 35, 100, 40, time.monotonic() + 30)
                               and order.append("third"))
    waiting.start()
    while not budget._queue:  # third waits to become the finisher
        time.sleep(0.01)
    assert not budget.grow(Reading(), 1, 100, 40, deadline=0.0)  # a newcomer queues behind it, and gives up
    budget.done(second, keep=10)  # the finisher is done: third becomes it, but 70 + 35 > 100
    until = time.monotonic() + 10
    while not third.finisher and time.monotonic() < until:
        time.sleep(0.01)
    assert order == [] and third.finisher
    budget.release(60)  # the decoder took the first body
    waiting.join(10)
    assert order == ["third"] and budget.held == 45 and budget.shares() == (35, 10)


def test_readers_never_all_wait_on_each_other() -> None:
    """Eight readers of bodies of max_bytes each, a budget of twice that, and a decoder freeing
    what they read: every body is read whole (none waits forever holding part of one)."""
    import queue
    import threading
    import time

    budget, decoded, finished = BodyBudget(), queue.Queue(), []
    capacity, max_bytes, chunk = 200, 100, 7

    def reader(index: int) -> None:
        reading, have = Reading(), 0
        while have < max_bytes + 1:
            step = min(chunk, max_bytes + 1 - have)
            assert budget.grow(reading, step, capacity, max_bytes + 1, time.monotonic() + 30), index
            have += step
            time.sleep(0.001 * (index % 3))
        budget.done(reading, keep=have)
        decoded.put(have)
        finished.append(index)

    def decoder() -> None:
        for _ in range(8):
            time.sleep(0.01)
            budget.release(decoded.get(timeout=30))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)] + [threading.Thread(target=decoder)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(finished) == list(range(8)) and budget.held == 0


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
    first = urllib.request.urlopen(base + "/redirect", timeout=30).read()
    second = urllib.request.urlopen(base + "/chunked", timeout=30).read()  # reserves max_bytes, keeps 3000
    print("held", fetch._budget.held)
    started = time.monotonic()
    try:
        urllib.request.urlopen(base + "/c", timeout=1).read()
    except Exception as exc:
        print("waited", type(exc).__name__, f"{time.monotonic() - started:.3f}", exc)
    print("held", fetch._budget.held)
    fetch.body_consumed(len(first))
    print("read", len(urllib.request.urlopen(base + "/d", timeout=30).read()), "held", fetch._budget.held)
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
    waited, error, seconds, message = lines[1].split(" ", 3)
    # at least the deadline (1 s), however long a loaded machine takes past it
    assert (waited, error) == ("waited", "DeadlineExceeded") and float(seconds) >= 1
    assert message.startswith("timed out: waited longer") and "max_buffered_bytes (8,000 bytes)" in message
    assert lines[2] == "held 6000"  # the attempt that timed out holds nothing
    assert lines[3] == "read 3000 held 6000"


@pytest.mark.network
def test_bodies_dripping_without_a_length_do_not_starve_other_rows(tmp_path: Path) -> None:
    """Each response without a Content-Length reserved max_bytes before reading: 16 dripping a byte
    a second held the whole default 512 MiB, and good rows from every other host timed out
    waiting for memory (web probe: 14 of 80). Now a body holds what it has read."""
    params = {"allow_private_networks": True, "timeout": 3, "threads": 16, "image_size": 16, "retries": 0,
              "max_bytes": 1 * MIB, "max_buffered_bytes": 4 * MIB}
    with serve_hostile() as host:
        urls = [f"{host.base_url}/drip-nolength/d{i}" if i % 3 == 0 else f"{host.base_url}/ok/g{i}.png"
                for i in range(30)]
        _, rows = run_download(tmp_path, pl.DataFrame({"url": urls, "alt_text": ["x"] * len(urls)}), params)
    good = rows.filter(pl.col("url").str.contains("/ok/"))
    assert good["status"].to_list() == ["success"] * 20, good.filter(pl.col("status") != "success")["error_message"]
    dripping = rows.filter(pl.col("url").str.contains("/drip-nolength/"))
    assert set(dripping["status"]) == {"failed_to_download"}
    assert all("timed out" in m and "for memory" not in m for m in dripping["error_message"])
