"""The metadata benchmark's pipeline written by hand in Polars: the baseline curate is held to.

Same semantics as the curate spec in ``bench_metadata.py``: the same filter, the same text
normalization (``clean_one``: html.unescape, controls and invisible characters, NFC, whitespace,
truncation at a grapheme cluster boundary, to a fixed point), drop texts shorter than 5
characters, keep the first row of each (url, alt_text), keep a seeded half. Written to be as
fast as Polars allows: one lazy query, streamed from Parquet to Parquet on every core, the
normalization vectorized (html.unescape too, for every named entity and the common numeric ones)
with Python only for the rows that need it (another '&', a cut next to a non-ASCII character).

    python benchmarks/metadata_polars.py SOURCE_DIR OUTPUT.parquet [--fraction 0.5] [--seed 0]

Prints ``{"rows": N}``. With ``--fraction 1`` there is no sampling, so N is exactly the
number of rows curate's ``exact_dedup`` step keeps (the benchmark checks it).
"""

from __future__ import annotations

import argparse
import html
import html.entities
import json
import re
import unicodedata

import polars as pl
import regex

MAX_LENGTH = 512
MIN_LENGTH = 5
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
# Invisible characters but ZWJ, ZWNJ, the bidi marks, and the tags of the flags of England,
# Scotland and Wales (curate_basics.invisible): replaced by the group, empty but for a flag.
INVISIBLE = (r"(\U0001f3f4\U000e0067\U000e0062(?:\U000e0065\U000e006e\U000e0067|"
             r"\U000e0073\U000e0063\U000e0074|\U000e0077\U000e006c\U000e0073)\U000e007f)"
             r"|[\u00ad\u200b\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
             r"\U000e0001\U000e0020-\U000e007f]")
CONTROL_RE = re.compile(CONTROL)
INVISIBLE_RE = re.compile(INVISIBLE)
CLUSTER_RE = regex.compile(r"\X")  # an extended grapheme cluster
WHITESPACE = r"[\s\x1c-\x1f]+"  # Python counts U+001C-U+001F as whitespace, Rust's regex does not
WHITESPACE_RE = re.compile(WHITESPACE)
PLAIN = r"^[!-~]+(?: [!-~]+)*$"  # printable ASCII words, single spaces: nothing to clean
# html.unescape, vectorized: each entity replaced by what html.unescape makes of it alone is
# exact for a text whose every '&' starts one of them or is a bare '&' html.unescape leaves.
ENTITIES = sorted(
    {f"&{name}" for name in html.entities.html5 if name.endswith(";")}
    | {f"&#{n};" for n in (*range(1024), *range(0x2000, 0x2070), 0x20AC, 0x2122)}
    | {f"&#{x}{h};" for n in range(256) for x in "xX" for h in (f"{n:x}", f"{n:X}")}
)
UNESCAPED = [html.unescape(e) for e in ENTITIES]
NOTHING = [""] * len(ENTITIES)
BARE = r"&(?:[\t\n\f <;]|$)|&[^\t\n\f <&#;](?:[\t\n\f <#]|$)"


def clean_one(text: str) -> str:
    """The reference: unescape, strip controls, NFC, collapse whitespace, truncate, to a fixed point."""
    for _ in range(16 + len(text)):  # web text is often escaped twice: repeat until nothing changes
        before = text
        if "&" in text:
            text = html.unescape(text)
        text = INVISIBLE_RE.sub(r"\1", CONTROL_RE.sub(" ", text))
        text = unicodedata.normalize("NFC", text)
        text = WHITESPACE_RE.sub(" ", text).strip()
        text = cut(text).rstrip()
        if text == before:
            break
    return text


def cut(text: str) -> str:
    """The longest prefix of whole grapheme clusters of at most MAX_LENGTH code points."""
    if len(text) <= MAX_LENGTH:
        return text
    end = 0
    for cluster in CLUSTER_RE.finditer(text):
        if cluster.end() > MAX_LENGTH:
            break
        end = cluster.end()
    return text[:end]


def truncate(texts: pl.Series) -> pl.Series:
    """cut on every text: sliced where both characters around the cut are ASCII (and not CR LF),
    in Python where not."""
    long = (texts.str.len_chars() > MAX_LENGTH).fill_null(False).arg_true()
    if not len(long):
        return texts
    longer = texts.gather(long)
    pair = longer.str.slice(MAX_LENGTH - 1, 2)
    inside = (~pair.str.contains(r"^[\x00-\x7f]{2}$") | (pair == "\r\n")).fill_null(False)
    sliced = longer.str.slice(0, MAX_LENGTH)
    if inside.any():
        done = pl.Series([cut(text) for text in longer.filter(inside).to_list()], dtype=pl.Utf8)
        sliced = sliced.scatter(inside.arg_true(), done)
    return texts.clone().scatter(long, sliced.str.strip_chars_end())


def plain(texts: pl.Series) -> pl.Series:
    return (texts.str.contains(PLAIN) & ~texts.str.contains("&", literal=True)
            & (texts.str.len_bytes() <= MAX_LENGTH)).fill_null(True)


def one_round(texts: pl.Series) -> pl.Series:
    texts = texts.str.replace_many(ENTITIES, UNESCAPED)
    texts = texts.str.replace_all(CONTROL, " ").str.replace_all(INVISIBLE, "${1}")
    wide = texts.str.contains(r"[^\x00-\x7f]").fill_null(False).arg_true()
    if len(wide):  # NFC leaves ASCII alone
        texts = texts.clone().scatter(wide, texts.gather(wide).str.normalize("NFC"))
    texts = texts.str.replace_all(WHITESPACE, " ").str.strip_chars()
    return truncate(texts)


def clean(texts: pl.Series) -> pl.Series:
    """clean_one on every text: vectorized rounds until nothing changes, Python for the texts a
    vectorized round cannot do exactly (another '&', a code point Python's Unicode lacks)."""
    out = texts.clone()
    rows = (~plain(texts)).arg_true()
    current = texts.gather(rows)
    rare = current.str.extract_all(r"[^\x00-\x7f]").explode().drop_nulls().unique().to_list()
    unknown = [c for c in rare if unicodedata.category(c) == "Cn"]
    slow = current.str.contains_any(unknown).fill_null(False) if unknown else pl.repeat(False, len(rows), eager=True)
    slow_rows = [rows.filter(slow)]
    rows, current = rows.filter(~slow), current.filter(~slow)
    for _ in range(6):
        if not len(rows):
            break
        other = current.str.replace_many(ENTITIES, NOTHING).str.replace_all(BARE, "")
        other = other.str.contains("&", literal=True).fill_null(False)
        slow_rows.append(rows.filter(other))
        rows, current = rows.filter(~other), current.filter(~other)
        after = one_round(current)
        out.scatter(rows, after)
        changed = (after != current).fill_null(False) & ~plain(after)
        rows, current = rows.filter(changed), after.filter(changed)
    slow_rows.append(rows)
    index = pl.concat(slow_rows)
    if len(index):
        fixed = [None if t is None else clean_one(t) for t in texts.gather(index).to_list()]
        out = out.scatter(index, pl.Series(fixed, dtype=pl.Utf8))
    return out


def pipeline(source: str, fraction: float, seed: int) -> pl.LazyFrame:
    url, alt_text = pl.col("url"), pl.col("alt_text")
    lower_url = url.str.to_lowercase()
    frame = pl.scan_parquet(f"{source}/*.parquet").filter(
        url.str.starts_with("http") & alt_text.is_not_null()
        & ~(lower_url.str.ends_with(".svg") | lower_url.str.ends_with(".gif"))
    )
    normalized = alt_text.map_batches(clean, return_dtype=pl.Utf8, is_elementwise=True)
    frame = (
        frame.with_columns(normalized.alias("alt_text"))
        .filter(alt_text.str.len_chars() >= MIN_LENGTH)
        .unique(subset=["url", "alt_text"], keep="first", maintain_order=True)
    )
    if fraction < 1:
        draw = pl.struct("url", "alt_text").hash(seed).cast(pl.Float64) * 2.0**-64
        frame = frame.filter(draw < fraction)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source")
    parser.add_argument("output")
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pipeline(args.source, args.fraction, args.seed).sink_parquet(args.output, compression="zstd")
    rows = pl.scan_parquet(args.output).select(pl.len()).collect().item()
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
