"""File names from data others control: a row's uid as a file name (:func:`file_key`), the key of
its image in the download step's store and of its files in exports (WebDataset members,
imagefolder images); and a name read back from an export's listing (:func:`inside`).

curate derives uids as 16 hex digits, but a source may bring its own, and those are web data:
``../../x``, ``/etc/x``, ``a.b``, names that differ only by case or by Unicode normalization, NUL,
control characters, 300 characters. Used as file names as they are, they wrote outside the store
folder, put absolute and ``..`` members into tars (which ``tarfile.extractall`` of Python 3.11
writes where they point), broke webdataset's key (it ends at the first dot), failed on long or NUL
names, and overwrote each other on case-insensitive file systems.

A uid made of lowercase ASCII letters, digits, ``_`` and ``-`` (not first), at most
:data:`PLAIN_LENGTH` long, is its own key (every derived uid, so existing stores and exports
keep their names). Any other uid's key is its first :data:`READABLE_LENGTH` characters with all
but those as ``_``, then ``~`` and 16 hex digits of its hash. No plain key holds ``~``, and no two uids share a hashed
key unless their 64-bit hashes collide, so keys stay unique also where case does not count.
Every key fits a USTAR tar member name with its extension (100 bytes), as the store writes them.
"""

from __future__ import annotations

import hashlib
import re

import polars as pl

PLAIN_LENGTH = 80
READABLE_LENGTH = 40
_PLAIN = re.compile(f"[a-z0-9_][a-z0-9_-]{{0,{PLAIN_LENGTH - 1}}}")
_OTHER = re.compile(r"^-|[^A-Za-z0-9_-]")  # a leading "-" too: `rm *` must not read a file name as an option


def file_key(uid: str) -> str:
    """The file name stem of the row with this uid (see the module's docstring)."""
    if _PLAIN.fullmatch(uid):
        return uid
    digest = hashlib.blake2b(uid.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    readable = _OTHER.sub("_", uid[:READABLE_LENGTH]) or "_"  # not "~…": a shell would expand it
    return f"{readable}~{digest}"


def inside(name: object) -> bool:
    """Whether ``name`` is a relative path that stays in its folder (``images/x.jpg``, not
    ``../x``, ``/x``, ``a//b``): what an export's listing may name, since a re-export replaces and
    deletes the files its listing names, and a listing is a file anyone could have written."""
    return (isinstance(name, str) and "\x00" not in name and "\\" not in name
            and all(part not in ("", ".", "..") for part in name.split("/")))


def file_keys(uids: pl.Series) -> pl.Series:
    """:func:`file_key` of every uid; a column of plain uids (the usual case) is returned as it is."""
    plain = uids.str.contains(f"^{_PLAIN.pattern}$")  # Rust's `$` is the end, not before a last newline
    if plain.all():
        return uids
    # a null uid (p is None) has no file: it stays null
    return pl.Series(uids.name, [file_key(u) if p is False else u for u, p in zip(uids, plain, strict=True)],
                     dtype=pl.Utf8)
