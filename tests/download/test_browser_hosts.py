"""A URL's host is fetched as browsers look it up (WHATWG URL: UTS #46, non-transitional, IDNA
2008), and refused where they refuse it. Python's "idna" codec, which the step used, is IDNA 2003:
``faß.de`` was fetched from ``fass.de`` (another registration), ``βόλος.com`` from ``βόλοσ``'s
name, a Sinhala name lost its joiner, ``a\\u200db.com`` became ``ab.com``, ``a⒈.com`` became
``a1..com``; the row kept its URL, and ``allowed_hosts: [fass.de]`` let ``faß.de`` in. Redirects
are followed the same way, and one to a scheme other than http(s) is refused, saying so."""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import quote, urlsplit

import idna
import pytest
from curate_download import fetch
from curate_download.step import DownloadParams
from curate_download.urls import HostRefused, browser_host
from curate_download.worker import REFUSED, NetworkPolicy, fetchable_url, prepared_url
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.download.hostile import serve_hostile

SINHALA = "\u0dc1\u0dca\u200d\u0dbb\u0dd3"  # ශ්‍රී: the joiner after the virama makes a conjunct


@pytest.mark.parametrize(("host", "fetched"), [
    ("faß.de", "xn--fa-hia.de"),  # IDNA 2003: fass.de
    ("Faß.DE", "xn--fa-hia.de"),
    ("βόλος.com", "xn--nxasmm1c.com"),  # IDNA 2003: xn--nxasmq6b.com, final sigma made σ
    (f"{SINHALA}.com", "xn--10cl1a0b660p.com"),  # IDNA 2003: xn--10cl1a0b.com, the joiner dropped
    ("ＥＸＡＭＰＬＥ.com", "example.com"),  # fullwidth and upper case: mapped, as before
    ("pаypal.com", "xn--pypal-4ve.com"),  # a Cyrillic а: its own name, as before
    ("例え。テスト", "xn--r8jz45g.xn--zckzah"),  # an ideographic full stop separates labels
    ("fa%C3%9F.de", "xn--fa-hia.de"),  # percent-encoded UTF-8, decoded first
    ("XN--FA-HIA.DE", "xn--fa-hia.de"),  # an A-label is checked, and kept
    ("my_host.bücher.de", "my_host.xn--bcher-kva.de"),  # browsers fetch these, IDNA 2008 alone does not
    ("r3---sn-x.bücher.de", "r3---sn-x.xn--bcher-kva.de"),
])
def test_hosts_are_fetched_as_browsers_look_them_up(host: str, fetched: str) -> None:
    assert fetchable_url(f"http://{host}/x.jpg") == f"http://{fetched}/x.jpg"
    assert browser_host(host) == fetched


@pytest.mark.parametrize(("host", "why"), [
    ("a\u200db.com", "U+200D ZERO WIDTH JOINER at position 2 of the label 'a\\u200db' is only allowed "
                     "after a virama (CheckJoiners)"),  # IDNA 2003: ab.com
    ("a\u200cb.com", "U+200C ZERO WIDTH NON-JOINER"),
    ("a\u2488.com", "U+2488"),  # IDNA 2003: a1..com, another name
    ("123.שלום.com", "breaks the Bidi Rule of RFC 5893"),  # a label starting with a digit, in an RTL name
    ("\u0301ab.com", "starts with a combining mark, U+0301 COMBINING ACUTE ACCENT"),
    ("xn---bbk.com", "is not the canonical Punycode of 'ま' (xn--bbk)"),  # a "fake A-label"
    ("xn--zz.com", "is not valid Punycode"),
    ("ab%FF.com", "U+FFFD"),  # percent-encoded bytes that are not UTF-8
    ("a%00b.com", "which no host name may hold"),
])
def test_hosts_browsers_refuse_are_refused_before_any_request(host: str, why: str) -> None:
    url = f"http://{host}/x.jpg"
    fetched, problem = prepared_url(NetworkPolicy(), url)
    assert fetched is None and problem is not None
    shown = host.replace("%FF", "\ufffd").replace("%00", "\x00")  # named percent-decoded
    assert problem.startswith(f"{REFUSED}: the URL cannot be encoded as a browser sends it: ")
    assert f"its host {shown!r} " in problem
    assert why in problem


def test_an_allowed_host_admits_exactly_what_browsers_take_it_for() -> None:
    """``fass.de`` and ``faß.de`` are two hosts: allowing one does not allow the other."""
    fass = NetworkPolicy(allowed_hosts=("fass.localhost",))
    assert prepared_url(fass, "http://fass.localhost/x") == ("http://fass.localhost/x", None)
    fetched, problem = prepared_url(fass, "http://faß.localhost/x")
    assert fetched is None and problem is not None and "host 'xn--fa-hia.localhost'" in problem
    assert "loopback" in problem

    eszett = NetworkPolicy(allowed_hosts=("Faß.localhost",))
    assert prepared_url(eszett, "http://faß.localhost/x") == ("http://xn--fa-hia.localhost/x", None)
    assert eszett.host_allowed("xn--fa-hia.localhost") and not eszett.host_allowed("fass.localhost")
    assert NetworkPolicy(allowed_hosts=("ＬＯＣＡＬＨＯＳＴ",)).host_allowed("localhost")
    assert NetworkPolicy(allowed_hosts=("[::1]",)).host_allowed("::1")


def test_an_allowed_host_browsers_refuse_is_refused_in_the_params() -> None:
    with pytest.raises(ValidationError, match=r"a\\u200db\.com.*CheckJoiners"):
        DownloadParams(allowed_hosts=["a\u200db.com"])
    hosts = ["faß.de", "10.0.0.0/8", "::1", "[::1]", "my_host.example"]
    assert DownloadParams(allowed_hosts=hosts).allowed_hosts == hosts


LABEL = st.one_of(  # labels browsers mostly take, and labels with joiners, marks, RTL letters, dots
    st.text(st.sampled_from("aZ09-_ßσςΣéüЖ例ＥＡ"), min_size=1, max_size=12),
    st.text(st.sampled_from("aZ09-_ßσςΣéü\u0301\u200d\u200c\u0dca\u0dc1שא١例ＥＡ。."), min_size=1, max_size=12))


@given(st.lists(LABEL, min_size=1, max_size=4).map(".".join))
def test_an_accepted_host_is_ascii_and_its_own_browser_form(host: str) -> None:
    """And it is the host as written, as UTS #46 maps it (case, width): no ß made ss, no ς made σ,
    no joiner dropped."""
    try:
        name = browser_host(host)
    except HostRefused as exc:
        assert repr(host) in str(exc)
        return
    assert name.isascii() and name == name.lower()
    assert browser_host(name) == name
    decoded = [label[4:].encode().decode("punycode") if label.startswith("xn--") else label
               for label in name.split(".")]
    assert ".".join(decoded) == idna.uts46_remap(host, std3_rules=False)
    url = fetchable_url(f"http://{host}/é")
    assert fetchable_url(url) == url and url.endswith("/%C3%A9")
    assert urlsplit(url).hostname == name  # a plain ASCII host keeps its case, which DNS ignores


def _opener() -> urllib.request.OpenerDirector:
    """urllib's opener with the worker's redirect handler, for this test only (not installed)."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.HTTPHandler(), urllib.request.HTTPDefaultErrorHandler(),
                    fetch.BrowserRedirects(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def test_redirects_are_followed_as_browsers_follow_them() -> None:
    """A redirect's Location (UTF-8 bytes) is encoded as a browser sends it: urllib sent its host
    percent-decoded as it came ("'latin-1' codec can't encode"; ``faß`` went to ``fass``). A
    redirect to file:, data: or javascript: is refused, naming the scheme and the Location
    (urllib said "Redirection to url … is not allowed"); one to a host browsers refuse, naming
    the rule. Nothing refused is requested."""
    with serve_hostile() as host:
        port = host.base_url.rsplit(":", 1)[1]
        targets = [f"http://ＬＯＣＡＬＨＯＳＴ:{port}/ok/mapped.png", "file:///etc/passwd",
                   "data:image/png;base64,iVBORw0KGgo=", "javascript:alert(1)",
                   f"http://a\u200db.localhost:{port}/ok/joiner.png"]
        results = []
        for target in targets:
            try:
                with _opener().open(f"{host.base_url}/to/{quote(target, safe='')}", timeout=5) as response:
                    results.append(f"{response.status} {response.read()[:4]!r}")
            except (OSError, UnicodeError) as exc:
                results.append(str(exc.reason) if isinstance(exc, urllib.error.URLError) else repr(exc))
        requested = list(zip(host.requests, host.hosts, strict=True))
    assert results[0] == "200 b'\\x89PNG'"
    assert requested[1] == ("/ok/mapped.png", f"localhost:{port}")
    schemes = ["file", "data", "javascript"]
    for result, scheme, location in zip(results[1:4], schemes, targets[1:4], strict=True):
        assert result == (f"refused: a redirect (HTTP 302) to a '{scheme}:' URL is not followed: scheme "
                          f"'{scheme}' is not downloaded, only http and https are (Location: {location})")
    assert results[4].startswith("refused: a redirect (HTTP 302) is not followed: the URL it leads to cannot "
                                 "be encoded as a browser sends it: its host 'a\\u200db.localhost' has no "
                                 "IDNA form")
    assert results[4].endswith("(CheckJoiners)")
    assert [path for path, _ in requested if not path.startswith("/to/")] == ["/ok/mapped.png"]
