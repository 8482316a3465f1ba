"""A download whose servers are down fails the run, and is not reused as finished (outcome.py)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest
from curate_download.outcome import nothing_fetched_warning, unreachable_problem
from hypothesis import given
from hypothesis import strategies as st

from curate.errors import StepError
from curate.runfiles import COMPLETE
from curate.testing.runner import read_step_output, run_spec
from tests.download.conftest import download_spec
from tests.download.hostile import png

REFUSED = "<urlopen error [Errno 111] Connection refused>"


def rows(*outcomes: tuple[str, str | None, bool]) -> pl.DataFrame:
    return pl.DataFrame({"url": [f"http://h{i % 2}.example:8080/{i}.jpg" for i in range(len(outcomes))],
                         "status": [o[0] for o in outcomes], "error_message": [o[1] for o in outcomes],
                         "transient": [o[2] for o in outcomes]})


def test_only_transient_failures_past_the_share_or_nothing_fetched_fail_the_step() -> None:
    gone = ("failed_to_download", "HTTP Error 404: Not Found", False)
    refused = ("failed_to_download", REFUSED, True)
    ok = ("success", None, False)
    assert unreachable_problem(rows(*[gone] * 10), 0.9) is None  # dead links: lasting, not an outage
    assert unreachable_problem(rows(*[refused] * 8, ok, ok), 0.9) is None
    assert unreachable_problem(rows(*[refused] * 10), None) is None
    assert unreachable_problem(rows(("refused", "private", False), ("missing_url", None, False)), 0.9) is None
    message, hint = unreachable_problem(rows(*[refused] * 10, ok), 0.9)
    assert message.startswith("10 of the 11 URLs it tried (91%) failed")
    assert "1 image(s) were fetched" in message
    assert "Failures: Connection refused (10). Hosts: h0.example:8080 (5), h1.example:8080 (5)" in message
    assert "max_transient_share (now 0.9)" in hint
    message, _ = unreachable_problem(rows(refused, gone, gone, gone), 0.9)  # nothing fetched
    assert "1 of the 4 URLs it tried (25%)" in message


def test_a_download_that_fetched_nothing_for_lasting_reasons_says_so() -> None:
    """Every URL dead (404) is no outage, so the step finishes: it used to finish without a word,
    the funnel's "0 kept" the only sign that the corpus is empty (automation probe)."""
    gone = ("failed_to_download", "HTTP Error 404: Not Found", False)
    empty = ("failed_to_download", None, False)
    warning = nothing_fetched_warning(rows(*[gone] * 3, ("refused", "private", False), empty))
    assert warning == ("fetched no image: all 4 URL(s) it tried failed (HTTP Error 404: Not Found (3), "
                       "failed_to_download (1)), so every later step has no row to work on; check that the URLs "
                       "still serve images (open one in a browser or with curl) and that the `url` column holds "
                       "image links, not page links")
    assert nothing_fetched_warning(rows(*[gone] * 3, ("success", None, False))) is None
    assert nothing_fetched_warning(rows(("refused", "private", False), ("missing_url", None, False))) is None


OUTCOMES = st.sampled_from([("success", None, False), ("failed_to_download", "HTTP Error 404: Not Found", False),
                            ("failed_to_download", REFUSED, True), ("refused", "private", False),
                            ("missing_url", None, False), ("too_large", "too large", False)])


@given(st.lists(OUTCOMES, max_size=12))
def test_the_warning_comes_exactly_when_urls_were_tried_and_none_fetched(outcomes: list) -> None:
    tried = [o for o in outcomes if o[0] not in ("refused", "missing_url")]
    warning = nothing_fetched_warning(rows(*outcomes)) if outcomes else None
    assert (warning is not None) == (bool(tried) and all(o[0] != "success" for o in tried))
    if warning is not None:
        assert f"all {len(tried):,} URL(s) it tried failed" in warning


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Images(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = png(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Gone(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(port: int, handler: type[BaseHTTPRequestHandler] = Images) -> Iterator[None]:
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.network
def test_a_download_whose_server_is_down_fails_and_the_next_runs_fetch_again(tmp_path: Path) -> None:
    """Every download failed (connection refused): the run exited 0 with an empty output, and the
    next run reused that result from the cache (automation probe)."""
    port = free_port()
    table = pl.DataFrame({"url": [f"http://127.0.0.1:{port}/{i}.png" for i in range(6)],
                          "alt_text": [f"a red cube {i}" for i in range(6)]})
    spec = download_spec({"allowed_hosts": ["127.0.0.1"], "timeout": 2.0, "image_size": 16, "threads": 4,
                          "drop_failed": True})
    for attempt in range(2):  # the second run is not a cached no-op: it fails again, as loudly
        with pytest.raises(StepError) as failed:
            run_spec(spec, tmp_path, tables={"data.parquet": table} if attempt == 0 else None)
        message = str(failed.value)
        assert "step 'download' failed: 6 of the 6 URLs it tried (100%) failed" in message, message
        assert f"Failures: Connection refused (6). Hosts: 127.0.0.1:{port} (6)" in message
        manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
        assert manifest["status"] == "failed"
        assert not (Path(manifest["steps"][1]["path"]) / COMPLETE).exists()
    with serving(port):
        manifest = run_spec(spec, tmp_path)
    assert manifest["status"] == "complete"
    assert read_step_output(manifest, "download")["status"].to_list() == ["success"] * 6


@pytest.mark.network
def test_a_download_of_dead_links_only_finishes_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    table = pl.DataFrame({"url": [f"http://127.0.0.1:{port}/{i}.png" for i in range(4)], "alt_text": ["a red cube"] * 4})
    spec = download_spec({"allowed_hosts": ["127.0.0.1"], "timeout": 2.0, "image_size": 16, "threads": 4,
                          "drop_failed": True})
    with serving(port, Gone), caplog.at_level("WARNING"):
        manifest = run_spec(spec, tmp_path, tables={"data.parquet": table})
    assert manifest["status"] == "complete"
    warning = "fetched no image: all 4 URL(s) it tried failed (HTTP Error 404: Not Found (4))"
    assert any(w.startswith(warning) for w in manifest["steps"][1]["summary"]["warnings"]), manifest["steps"][1]
    assert f"download: {warning}" in caplog.text
