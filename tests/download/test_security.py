"""Only http(s), and no private, loopback or link-local host unless the spec says so; the refusal
names the setting to change. Refusals are decided before any request, or at connect time for
redirects and resolved names."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest
from curate_download.step import Download, DownloadParams
from curate_download.worker import REFUSED
from curate_world.generate import World

from curate.errors import StepError
from curate.step import StepContext
from tests.download.conftest import TIMEOUT, counting_server, read_dropped, run_download, url_table
from tests.download.hostile import png

pytestmark = pytest.mark.network


def test_loopback_is_refused_by_default(faulty_world: World, tmp_path: Path) -> None:
    with counting_server(faulty_world) as server:
        table = url_table(faulty_world, server.base_url, rows=12)
        manifest, rows = run_download(tmp_path, table, {"timeout": TIMEOUT})
        assert sum(server.counts.values()) == 0  # not a single request reached the server
    assert set(rows["status"]) == {"refused"}
    assert rows["image"].null_count() == rows.height
    message = rows["error_message"][0]
    assert message.startswith(REFUSED) and "127.0.0.1" in message and "loopback" in message
    assert "`allow_private_networks: true`" in message and "allowed_hosts" in message
    record = manifest["steps"][1]
    assert not list(Path(record["path"]).glob("artifacts/shard-*/download.log"))  # img2dataset never started

    step = Download(DownloadParams())
    ctx = StepContext(run_dir=tmp_path, label="download", seed=0, artifacts=tmp_path,
                      extras={"step_dir": record["path"], "store_dir": manifest["store_dir"]})
    summary = step.summary(ctx)
    assert summary["status"] == {"refused": 12}
    assert len(summary["warnings"]) == 1 and "`allow_private_networks: true`" in summary["warnings"][0]


class _Redirector(BaseHTTPRequestHandler):
    """``/to/<url>`` answers 302 to ``<url>``: a public page redirecting into the private network."""

    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.path.removeprefix("/to/"))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def redirector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_allow_list_redirects_and_drop_policy(faulty_world: World, tmp_path: Path, redirector: str) -> None:
    """Only 'localhost' is allowed. World URLs via localhost download; the same server by address
    is refused up front; a redirect from localhost to 127.0.0.1 is refused when it is followed;
    other schemes, redirects to them and a metadata address are refused; the policy drops what
    it names."""
    with counting_server(faulty_world) as server:
        port = server.server.port
        later = pl.read_parquet(faulty_world.world_table).slice(30)  # rows the world part does not fetch
        healthy = later.filter(pl.col("fault") == "none")["url_path"].to_list()
        # its one "slow" URL left out: it only waited out a timeout, a backoff and its retry
        world = url_table(faulty_world, f"http://localhost:{port}", rows=30).filter(pl.col("gt_fault") != "slow")
        extra = pl.DataFrame({
            "url": [
                f"http://127.0.0.1:{port}{healthy[0]}",
                f"{redirector}/to/http://127.0.0.1:{port}/raw/{healthy[1].rsplit('/', 1)[1]}",
                "http://169.254.169.254/latest/meta-data/",
                f"file://{faulty_world.dir / 'world.json'}",
                None,
                f"{redirector}/to/file://{faulty_world.dir / 'world.json'}",
                f"{redirector}/to/data:image/png;base64,iVBORw0KGgo=",
            ],
            "alt_text": [f"extra {i}" for i in range(7)],
            "gt_fault": ["by-address", "redirect-to-address", "metadata", "file", "no-url", "redirect-to-file",
                         "redirect-to-data"],
            "gt_image_path": [None] * 7,
        }, schema=world.schema)
        params = {"allowed_hosts": ["localhost"], "timeout": TIMEOUT, "retries": 1,
                  "drop_failed": ["opted_out", "refused"], "image_size": 64}
        manifest, kept = run_download(tmp_path, pl.concat([world, extra]), params)
        fetched = server.counts
    dropped = read_dropped(manifest)
    status = dict(pl.concat([kept, dropped], how="diagonal_relaxed").select("gt_fault", "status")
                  .filter(~pl.col("gt_fault").is_in(["none", "404", "500", "slow", "truncated", "not_image",
                                                     "oversized", "redirect", "redirect_loop", "noai"]))
                  .iter_rows())
    assert status == {"by-address": "refused", "redirect-to-address": "refused", "metadata": "refused",
                      "file": "refused", "no-url": "missing_url", "redirect-to-file": "refused",
                      "redirect-to-data": "refused"}
    redirected = dropped.filter(pl.col("gt_fault") == "redirect-to-address")["error_message"][0]
    assert redirected.startswith(REFUSED) and "'127.0.0.1'" in redirected and "urlopen" not in redirected
    assert "only http and https" in dropped.filter(pl.col("gt_fault") == "file")["error_message"][0]
    for scheme in ("file", "data"):  # not followed: refused, naming the redirect, the scheme and where it led
        message = dropped.filter(pl.col("gt_fault") == f"redirect-to-{scheme}")["error_message"][0]
        assert message.startswith(f"{REFUSED}: a redirect (HTTP 302) to a '{scheme}:' URL is not followed: "
                                  f"scheme '{scheme}' is not downloaded, only http and https are (Location: ")
    assert fetched[f"/raw/{healthy[1].rsplit('/', 1)[1]}"] == 0  # the redirect was never followed
    assert fetched[healthy[0]] == 0  # refused before any request

    # the policy: refused and opted-out rows are dropped with the reason, other failures are kept
    assert set(dropped["_drop_reason"]) <= {"download: refused", "download: opted_out"}
    assert "refused" in set(dropped["status"]) <= {"refused", "opted_out"}
    assert set(kept["status"]) <= {"success", "failed_to_download", "failed_to_resize", "image_too_large", "missing_url"}
    assert kept.filter(pl.col("gt_fault") == "none")["status"].to_list() == ["success"] * kept.filter(
        pl.col("gt_fault") == "none").height
    assert manifest["steps"][1]["dropped"] == dict(sorted(dropped.group_by("_drop_reason").len().iter_rows()))


class _Proxy(BaseHTTPRequestHandler):
    """A forward proxy that answers every request itself with a small PNG, and records it."""

    protocol_version = "HTTP/1.0"
    seen: list[str] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        body = png("proxied")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_proxy_cannot_carry_requests_past_the_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With http_proxy pointing at an allowed host, the guard used to vet the proxy and the proxy
    fetched metadata.google.internal. Now the step refuses the combination before any request."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Proxy.seen = []
    for name in ("no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{server.server_address[1]}")
    table = pl.DataFrame({"url": ["http://metadata.google.internal/computeMetadata/v1/a.png"], "alt_text": ["x"]})
    try:
        with pytest.raises(StepError, match="http_proxy") as failure:
            run_download(tmp_path, table, {"allowed_hosts": ["127.0.0.1"], "timeout": TIMEOUT})
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert _Proxy.seen == []
    assert "allow_private_networks: true" in str(failure.value)


@pytest.mark.parametrize("lifted, said", [
    ({"allow_private_networks": True}, "allow_private_networks: true"),
    ({"allowed_hosts": ["127.0.0.1"]}, "allowed_hosts ['127.0.0.1']"),
    ({"max_image_area": None}, "max_image_area null"),
    ({"max_image_area": 1e9}, "max_image_area 1000000000.0"),
    ({"max_decode_bytes": 2**40}, "max_decode_bytes 1,099,511,627,776"),
    ({"max_bytes": 10**12}, "max_bytes 1,000,000,000,000"),
    ({"max_buffered_bytes": 2**40}, "max_buffered_bytes 1,099,511,627,776"),
    ({"threads": 4096}, "threads 4096"),
    ({"processes": 256}, "processes 256"),
])
def test_an_untrusted_spec_may_not_lift_the_downloads_protections(lifted, said):
    """An untrusted spec fetched from the user's loopback and decoded a 1.1 MB PNG into 1.2 GB with
    these params (security probe); a spec of the user's own may set them."""
    step = Download(DownloadParams(**lifted))
    assert step.plan_check_params() == []
    step.untrusted = True
    problems = step.plan_check_params()
    assert len(problems) == 1 and problems[0].startswith("an untrusted spec may not lift the download's protections")
    assert said in problems[0] and "without --untrusted" in problems[0]


def test_an_untrusted_spec_may_tighten_the_downloads_protections():
    step = Download(DownloadParams(max_image_area=1e6, max_bytes=2**20, threads=8, max_decode_bytes=2**20 * 32))
    step.untrusted = True
    assert step.plan_check_params() == []
