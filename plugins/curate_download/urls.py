"""URLs as a browser sends them: the host as UTS #46 maps it, the rest percent-encoded.

Browsers turn a URL's host into the name they look up with the WHATWG URL standard's "domain to
ASCII": UTS #46 processing, non-transitional (IDNA 2008: ``faß.de`` is ``xn--fa-hia.de``, not
``fass.de``; ``ς`` stays ``ς``; a joiner stays where it is allowed), with CheckHyphens off,
CheckBidi and CheckJoiners on, UseSTD3ASCIIRules off and no DNS length check, then a refusal of
the code points no host may hold. Python's ``"idna"`` codec is IDNA 2003 (``faß.de`` becomes
``fass.de``, another registration) and the ``idna`` package's ``encode`` applies IDNA 2008's
own rules on top of the mapping (it refuses ``my_host``, ``r3---sn-x`` and ``-a``, which
browsers fetch). So this module follows UTS #46 section 4 itself, with the ``idna`` package's
mapping table (``uts46_remap``), joiner rules (``valid_contextj``) and Bidi Rule
(``check_bidi``). On top of it, a name DNS cannot look up (an empty label, a label over 63 or a
name over 253 octets) is refused before any request, where a browser would fail the lookup.

The host is the one thing of a URL that decides where a request goes, so a host is refused
rather than guessed at: the caller fails the row, saying why, and fetches nothing.

Standard library only, but for ``idna``, imported when a host needs it (one that is not ASCII,
or holds ``%`` or an ``xn--`` label): this module is imported by img2dataset's processes, see
``worker.py``.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote, urlsplit, urlunsplit

# What browsers percent-encode in a URL besides non-ASCII characters (WHATWG URL's percent-encode
# sets, for path, query and fragment together): C0 controls, space, DEL, " < > ` { }. urllib sends
# a URL as given, and http.client refuses it ("URL can't contain control characters", for a space)
# or fails to encode it ("'ascii' codec can't encode character"): URLs scraped from HTML hold both.
TO_PERCENT_ENCODE = re.compile(r'[^\x21-\x7e]|["<>`{}]')
ACE_PREFIX = "xn--"
# WHATWG URL's forbidden domain code points: no host holds one once mapped.
FORBIDDEN_IN_HOST = re.compile(r"[\x00-\x20#%/:<>?@\[\\\]^|\x7f]")
MAX_LABEL_OCTETS = 63  # RFC 1035
MAX_NAME_OCTETS = 253  # RFC 1035, without the root's trailing dot
RIGHT_TO_LEFT = frozenset({"R", "AL", "AN"})  # a label with one of these makes a "Bidi domain name"


def _percent_encode(text: str) -> str:
    return TO_PERCENT_ENCODE.sub(lambda match: quote(match.group(), safe=""), text)


def _needs_mapping(host: str) -> bool:
    """Whether ``host`` is more than an ASCII name to lowercase: not ASCII, percent-encoded, or
    with an A-label, which browsers decode and check."""
    return not host.isascii() or "%" in host or ACE_PREFIX in host.lower()


def fetchable_url(url: str) -> str:
    """``url`` as a browser sends it: its host as :func:`browser_host` gives it (``faß.de`` is
    ``xn--fa-hia.de``), the rest with non-ASCII characters percent-encoded as UTF-8, and
    spaces and the like as ``%20``; what is already percent-encoded stays. An ASCII URL with
    nothing to encode and a plain ASCII host is returned as it is. Raises ValueError, saying
    why, when it cannot be: a host browsers refuse is never fetched."""
    encode = TO_PERCENT_ENCODE.search(url) is not None
    if not encode and "%" not in url and ACE_PREFIX not in url.lower():
        return url
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    fetched_hostport = hostport
    if not hostport.startswith("["):  # an IPv6 literal is the policy's and urllib's to judge
        host, colon, port = hostport.partition(":")
        if not port.isascii():
            raise ValueError(f"its port {port!r} is not a number")
        if _needs_mapping(host):
            fetched_hostport = browser_host(host) + colon + port
    if not encode and fetched_hostport == hostport:
        return url
    netloc = _percent_encode(userinfo) + at + fetched_hostport
    return urlunsplit((parts.scheme, netloc, *(_percent_encode(part) for part in parts[2:])))


class HostRefused(ValueError):
    """A host browsers do not fetch: ``str()`` says which (``its host 'a\\u200db.com' …``),
    ``reason`` why (``has no IDNA form …``)."""

    def __init__(self, host: str, reason: str):
        super().__init__(f"its host {host!r} {reason}")
        self.host = host
        self.reason = reason


class _LabelRefused(ValueError):
    """A label breaks a rule of UTS #46; :func:`browser_host` names the host."""


def browser_host(host: str) -> str:
    """The name a browser looks up for ``host`` (a URL's host, not an IP literal in brackets):
    percent-decoded, mapped by UTS #46 (``ＥＸＡＭＰＬＥ.com`` is ``example.com``, ``Faß.de`` is
    ``faß.de``), checked, and each non-ASCII label in Punycode (``xn--fa-hia.de``). Raises
    :class:`HostRefused` naming the host (percent-decoded) and the rule it breaks."""
    domain = unquote(host, errors="replace") if "%" in host else host
    if not _needs_mapping(domain):
        name = domain.lower()
    else:
        try:
            name = _to_ascii(domain)
        except _LabelRefused as exc:
            raise HostRefused(domain, f"has no IDNA form a browser would fetch (UTS #46): {exc}") from None
    forbidden = FORBIDDEN_IN_HOST.search(name)
    if forbidden:
        raise HostRefused(domain, f"holds {forbidden.group()!r}, which no host name may hold")
    problem = _dns_problem(name)
    if problem:
        raise HostRefused(domain, f"({name}) cannot be looked up: {problem}")
    return name


def _dns_problem(name: str) -> str | None:
    labels = name.removesuffix(".").split(".")
    if any(not label for label in labels):
        return "it has an empty label"
    long = next((label for label in labels if len(label) > MAX_LABEL_OCTETS), None)
    if long is not None:
        return f"a label is {len(long)} octets long, more than DNS allows ({MAX_LABEL_OCTETS})"
    if len(name.removesuffix(".")) > MAX_NAME_OCTETS:
        return f"it is {len(name)} octets long, more than DNS allows ({MAX_NAME_OCTETS})"
    return None


def _to_ascii(domain: str) -> str:
    """UTS #46 ToASCII, non-transitional, with the WHATWG URL standard's flags (see the module's
    docstring). Raises :class:`_LabelRefused` saying which rule a label breaks."""
    import idna

    try:
        mapped = idna.uts46_remap(domain, std3_rules=False, transitional=False)
    except idna.IDNAError as exc:
        raise _LabelRefused(_described(exc)) from None
    labels = [_decoded(label) for label in mapped.split(".")]
    bidi = any(unicodedata.bidirectional(char) in RIGHT_TO_LEFT for label in labels for char in label)
    for label in labels:
        _check(label, bidi)
    return ".".join(label if label.isascii() else ACE_PREFIX + label.encode("punycode").decode("ascii")
                    for label in labels)


def _decoded(label: str) -> str:
    """An A-label's Unicode form, which must be valid as it is (UTS #46 section 4, step 4)."""
    if not label.startswith(ACE_PREFIX):
        return label
    import idna

    code = label[len(ACE_PREFIX):]
    try:
        decoded = code.encode("ascii").decode("punycode") if code else ""
    except UnicodeError:
        raise _LabelRefused(f"the label {label!r} is not valid Punycode") from None
    if not decoded or decoded.isascii():
        raise _LabelRefused(f"the label {label!r} is not an A-label: it decodes to {decoded!r}, plain ASCII")
    if decoded.encode("punycode").decode("ascii") != code:
        raise _LabelRefused(f"the label {label!r} is not the canonical Punycode of {decoded!r} "
                          f"(xn--{decoded.encode('punycode').decode('ascii')})")
    try:
        valid = idna.uts46_remap(decoded, std3_rules=False, transitional=False) == decoded
    except idna.IDNAError:
        valid = False
    if not valid or decoded.startswith(ACE_PREFIX) or "." in decoded:
        raise _LabelRefused(f"the label {label!r} decodes to {decoded!r}, which a host may not hold "
                          "(its Unicode form must be mapped already)")
    return decoded


def _check(label: str, bidi: bool) -> None:
    """UTS #46's validity criteria (section 4.1) that mapping does not already ensure: no leading
    combining mark, joiners only where RFC 5892 allows them (CheckJoiners), and, in a domain with
    right-to-left characters, RFC 5893's Bidi Rule for every label (CheckBidi)."""
    from idna.core import IDNAError, check_bidi, valid_contextj

    if not label:
        return
    if unicodedata.category(label[0]).startswith("M"):
        raise _LabelRefused(f"the label {label!r} starts with a combining mark, {_named(label[0])}")
    for position, char in enumerate(label):
        if char in "\u200c\u200d":
            try:
                allowed = valid_contextj(label, position)
            except (IDNAError, ValueError):
                allowed = False
            if not allowed:
                where = "after a virama" + ("" if char == "\u200d" else ", or between letters that join")
                raise _LabelRefused(f"{_named(char)} at position {position + 1} of the label {label!r} is "
                                    f"only allowed {where} (CheckJoiners)")
    if bidi:
        try:
            check_bidi(label, check_ltr=True)
        except IDNAError as exc:
            raise _LabelRefused(f"the label {label!r}, in a name with right-to-left characters, breaks the "
                                f"Bidi Rule of RFC 5893 ({_described(exc)}) (CheckBidi)") from None


def _named(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed')}"


def _described(exc: Exception) -> str:
    """The ``idna`` package's message, with the code point it names spelled out."""
    text = str(exc)
    codepoint = getattr(exc, "codepoint", None)
    if isinstance(codepoint, int):
        text += f" ({_named(chr(codepoint))})"
    return text
