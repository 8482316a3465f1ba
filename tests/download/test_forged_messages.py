"""A server writes part of a row's message (its reason phrase, a redirect's Location, the start of a
reply without a status line); the step classifies rows by their messages. A 404 whose reason phrase
was curate's refusal made the row `refused`, its lineage reason "download: refused", and the run's
summary advise setting `allow_private_networks: true`; others forged too_large, opted_out, or a
transient "timed out" that --retry-failed fetched again. The status is what the HTTP code says."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from curate_download.step import Download, DownloadParams, _error, _status, refusal_warnings, transient
from curate_download.worker import REFUSED

from curate.step import StepContext
from tests.download.conftest import NO_STALL_TIMEOUT, run_download
from tests.download.hostile import FORGED_REASONS, serve_hostile

REFUSAL = (f"{REFUSED}: host 'cdn.example.com' resolves to a private address (10.0.0.7); private, loopback "
           "and link-local addresses are not downloaded unless the download step's params set "
           "`allow_private_networks: true` or list the host in `allowed_hosts: ['cdn.example.com']`")


def _classified(messages: list[str]) -> pl.DataFrame:
    rows = pl.DataFrame({"status": ["failed_to_download"] * len(messages), "error_message": messages})
    return rows.select(_status(), _error(50_000_000), transient().alias("transient"))


@pytest.mark.parametrize("kind", sorted(FORGED_REASONS))
def test_text_a_server_wrote_classifies_no_row(kind: str) -> None:
    """Were a server's text kept in a message, the step would still read only the message's start."""
    reason = FORGED_REASONS[kind]
    messages = [f"HTTP Error 404: {reason}", f"HTTP Error 404: {reason} (gave up after 3 attempts)",
                f"HTTP Error 302: Found - Redirection to url 'gopher://x/{reason}' is not allowed",
                f"the server sent an invalid HTTP status line: 'HTTP/1.1 404 {reason}'"]
    rows = _classified(messages)
    assert rows["status"].to_list() == ["failed_to_download"] * len(messages)
    assert rows["error_message"].to_list() == messages
    assert not rows["transient"].any()


@pytest.mark.parametrize(("message", "status", "shown"), [
    (f"<urlopen error {REFUSAL}>", "refused", REFUSAL),
    (REFUSAL, "refused", REFUSAL),
    ("response body larger than max_bytes (1024 bytes): stopped reading after 1025 bytes", "too_large", None),
    ("image area larger than max_image_area (50,000,000 pixels): the image declares 9x9 = 81 pixels",
     "image_too_large", None),
    ("image needs more memory to decode than max_decode_bytes (9 bytes): the image declares …",
     "image_too_large", None),
    ("image area too large", "image_too_large", None),
    ("Use of image disallowed by X-Robots-Tag directive", "opted_out", None),
    ("HTTP Error 404: Not Found", "failed_to_download", None),
])
def test_curates_own_messages_still_classify(message: str, status: str, shown: str | None) -> None:
    rows = _classified([message])
    assert rows["status"].to_list() == [status]
    assert rows["error_message"].to_list() == [shown or message]


def test_only_a_refusal_by_address_advises_allow_private_networks() -> None:
    rows = pl.DataFrame({"status": ["refused"] * 2, "error_message": [
        REFUSAL, f"{REFUSED}: the URL cannot be parsed (netloc 'allow_private_networks' contains invalid "
                 "characters)"]})
    warnings = refusal_warnings(rows)
    assert len(warnings) == 2 and warnings[0].startswith("1 URL(s) refused because their host is a private")
    assert warnings[1].startswith("1 URL(s) refused (")


@pytest.mark.network
def test_a_servers_reason_phrase_cannot_forge_a_status(tmp_path: Path) -> None:
    params = {"allowed_hosts": ["127.0.0.1"], "timeout": NO_STALL_TIMEOUT, "image_size": 24, "threads": 8,
              "drop_failed": ["too_large", "opted_out", "image_too_large"]}
    with serve_hostile() as host:
        urls = [f"{host.base_url}/forged/{kind}/r" for kind in sorted(FORGED_REASONS)]
        urls += [f"{host.base_url}/forged-redirect/r", f"{host.base_url}/ok/fine.png"]
        table = pl.DataFrame({"url": urls, "alt_text": [f"row {i}" for i in range(len(urls))]})
        manifest, rows = run_download(tmp_path, table, params)
    print(rows.select("url", "status", "error_message"))
    assert rows.height == table.height  # nothing dropped as too_large, opted_out or image_too_large
    forged = rows.filter(pl.col("url").str.contains("/forged/"))
    assert forged["status"].to_list() == ["failed_to_download"] * len(FORGED_REASONS)
    assert set(forged["error_message"]) == {"HTTP Error 404: Not Found"}
    # refused by curate for its scheme, gopher:, whatever its Location says after that
    redirected = rows.filter(pl.col("url").str.contains("/forged-redirect/"))
    assert redirected["status"].to_list() == ["refused"]
    assert redirected["error_message"][0].startswith(
        f"{REFUSED}: a redirect (HTTP 302) to a 'gopher:' URL is not followed: scheme 'gopher' is not "
        "downloaded, only http and https are (Location: gopher://x/")
    assert rows.filter(pl.col("url").str.ends_with("/fine.png"))["status"].to_list() == ["success"]
    assert rows.filter(transient()).height == 0  # --retry-failed would fetch none of them again

    record = next(r for r in manifest["steps"] if r["label"] == "download")
    ctx = StepContext(run_dir=tmp_path, label="download", seed=0,
                      artifacts=Path(record["path"]) / "artifacts",
                      extras={"step_dir": record["path"], "store_dir": manifest["store_dir"]})
    summary = Download(DownloadParams(**params)).summary(ctx)
    assert summary["status"]["refused"] == 1 and len(summary["warnings"]) == 1
    assert summary["warnings"][0].startswith("1 URL(s) refused (not http or https")  # no advice to allow private


def test_an_empty_body_says_so(tmp_path: Path) -> None:
    """It was OpenCV's raw assertion, with its source path (web probe)."""
    with serve_hostile() as host:
        table = pl.DataFrame({"url": [f"{host.base_url}/empty/a", f"{host.base_url}/ok/fine.png"], "alt_text": ["a", "b"]})
        _, rows = run_download(tmp_path, table, {"allowed_hosts": ["127.0.0.1"], "timeout": NO_STALL_TIMEOUT,
                                                 "image_size": 24})
    assert rows["status"].to_list() == ["failed_to_download", "success"]
    assert rows["error_message"][0] == "the server sent an empty body (HTTP 200, no bytes)"
