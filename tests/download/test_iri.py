"""URLs as scraped from HTML hold non-ASCII characters and spaces (IRIs), which browsers
percent-encode; urllib sends a URL as given, and such rows failed with "'ascii' codec can't encode
character" or "URL can't contain control characters". The step fetches them encoded as a browser
would, keeps the row's url column as it was, and checks the host that is fetched."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from curate_download.worker import MAX_URL_LENGTH, REFUSED, NetworkPolicy, fetchable_url, prepared_url

from tests.download.conftest import NO_STALL_TIMEOUT, run_download
from tests.download.hostile import serve_hostile


@pytest.mark.parametrize(("url", "fetched"), [
    ("http://example.com/café.png", "http://example.com/caf%C3%A9.png"),
    ("http://example.com/caf%C3%A9.png", "http://example.com/caf%C3%A9.png"),  # already encoded: as it is
    ("http://example.com/ok.png?q=ü&r=a b#é", "http://example.com/ok.png?q=%C3%BC&r=a%20b#%C3%A9"),
    ("http://example.com/my photo.png", "http://example.com/my%20photo.png"),
    ("http://example.com/图片/猫.jpg", "http://example.com/%E5%9B%BE%E7%89%87/%E7%8C%AB.jpg"),
    ('http://example.com/a"<b>`{c}.png', "http://example.com/a%22%3Cb%3E%60%7Bc%7D.png"),
    ("http://bücher.example:8080/a b.png", "http://xn--bcher-kva.example:8080/a%20b.png"),
    ("http://usér:pw@bücher.example/x", "http://us%C3%A9r:pw@xn--bcher-kva.example/x"),
    ("http://[::1]:80/é", "http://[::1]:80/%C3%A9"),
    ("https://example.com/a.png?x=1|2", "https://example.com/a.png?x=1|2"),  # nothing to encode: unchanged
])
def test_urls_are_encoded_as_browsers_do(url: str, fetched: str) -> None:
    assert fetchable_url(url) == fetched
    assert fetchable_url(fetched) == fetched


@pytest.mark.parametrize(("url", "why"), [
    ("http://" + "ä" * 64 + ".example/a.png", "cannot be looked up: a label is 70 octets long"),
    ("http://a..bü.example/é.png", "cannot be looked up: it has an empty label"),
    ("http://bücher.example:８０/a.png", "is not a number"),
])
def test_a_url_that_cannot_be_encoded_is_refused_saying_so(url: str, why: str) -> None:
    fetched, problem = prepared_url(NetworkPolicy(), url)
    assert fetched is None and problem is not None
    assert problem.startswith(f"{REFUSED}: the URL cannot be encoded as a browser sends it: ")
    assert why in problem


def test_the_policy_sees_the_host_that_is_fetched() -> None:
    """Fullwidth ｌｏｃａｌｈｏｓｔ is localhost in IDNA; a host allowed in Unicode is allowed
    in IDNA."""
    fetched, problem = prepared_url(NetworkPolicy(), "http://ｌｏｃａｌｈｏｓｔ/é.png")
    assert fetched is None and problem is not None and "host 'localhost'" in problem and "loopback" in problem
    policy = NetworkPolicy(allowed_hosts=("bücher.example",))
    assert policy.host_allowed("xn--bcher-kva.example")
    assert prepared_url(policy, "http://bücher.example/é") == ("http://xn--bcher-kva.example/%C3%A9", None)
    long = "http://example.com/" + "é" * (MAX_URL_LENGTH // 6)
    fetched, problem = prepared_url(NetworkPolicy(), long)
    assert fetched is None and problem is not None and problem.endswith("once percent-encoded")


@pytest.mark.network
def test_iris_are_downloaded_and_keep_their_url(tmp_path: Path) -> None:
    with serve_hostile() as host:
        paths = ["ok/café.png", "ok/my photo.png", "ok/x.png?q=ü", "ok/caf%C3%A9.png", "ok/图片.png"]
        urls = [f"{host.base_url}/{path}" for path in paths] + ["http://a..bü.example/é.png"]
        table = pl.DataFrame({"url": urls, "alt_text": [f"row {i}" for i in range(len(urls))]})
        params = {"allowed_hosts": ["127.0.0.1"], "timeout": NO_STALL_TIMEOUT, "image_size": 24}
        _, rows = run_download(tmp_path, table, params)
        requested = host.requests
    print(rows.select("url", "status", "error_message"))
    assert rows["url"].to_list() == urls
    assert rows["status"].to_list() == ["success"] * len(paths) + ["refused"]
    assert {"/ok/caf%C3%A9.png", "/ok/my%20photo.png", "/ok/x.png?q=%C3%BC"} <= set(requested)
    # café.png and caf%C3%A9.png are one resource: the same bytes
    assert rows["sha256"][0] == rows["sha256"][3]
