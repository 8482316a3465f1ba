"""The metadata benchmark's pipeline written by hand in Polars: the baseline curate is held to.

Same semantics as the curate spec in ``bench_metadata.py``: the same filter, the same text
normalization (Python's ``html.unescape`` to a fixed point for texts with '&', vectorized
regexes for the rest), drop texts shorter than 5 characters, keep the first row of each
(url, alt_text), keep a seeded half. Written to be as fast as Polars allows: one lazy query,
streamed from Parquet to Parquet, Python only for the rows that need it.

    python benchmarks/metadata_polars.py SOURCE_DIR OUTPUT.parquet [--fraction 0.5] [--seed 0]

Prints ``{"rows": N}``. With ``--fraction 1`` there is no sampling, so N is exactly the
number of rows curate's ``exact_dedup`` step keeps (the benchmark checks it).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import unicodedata

import polars as pl

MAX_LENGTH = 512
MIN_LENGTH = 5
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
ZERO_WIDTH = r"[\u200b-\u200d\u2060\ufeff]"
CONTROL_RE = re.compile(CONTROL)
ZERO_WIDTH_RE = re.compile(ZERO_WIDTH)
WHITESPACE = r"[\s\x1c-\x1f]+"  # Python counts U+001C-U+001F as whitespace, Rust's regex does not
WHITESPACE_RE = re.compile(WHITESPACE)


def clean(text: pl.Expr) -> pl.Expr:
    text = text.str.replace_all(CONTROL, " ").str.replace_all(ZERO_WIDTH, "").str.normalize("NFC")
    text = text.str.replace_all(WHITESPACE, " ").str.strip_chars()
    return text.str.slice(0, MAX_LENGTH).str.strip_chars_end()


def clean_with_entities(text: str) -> str:
    for _ in range(16 + len(text)):  # web text is often escaped twice: repeat until nothing changes
        before = text
        if "&" in text:
            text = html.unescape(text)
        text = ZERO_WIDTH_RE.sub("", CONTROL_RE.sub(" ", text))
        text = unicodedata.normalize("NFC", text)
        text = WHITESPACE_RE.sub(" ", text).strip()
        text = text[:MAX_LENGTH].rstrip()
        if text == before:
            break
    return text


def entity_rows(texts: pl.Series) -> pl.Series:
    """Texts with '&' cleaned in Python (Polars cannot unescape HTML); null for the others."""
    index = texts.str.contains("&", literal=True).fill_null(False).arg_true()
    out = pl.repeat(None, len(texts), dtype=pl.Utf8, eager=True)
    if len(index):
        fixed = [clean_with_entities(t) for t in texts.gather(index).to_list()]
        out = out.scatter(index, pl.Series(fixed, dtype=pl.Utf8))
    return out


def pipeline(source: str, fraction: float, seed: int) -> pl.LazyFrame:
    url, alt_text = pl.col("url"), pl.col("alt_text")
    lower_url = url.str.to_lowercase()
    frame = pl.scan_parquet(f"{source}/*.parquet").filter(
        url.str.starts_with("http") & alt_text.is_not_null()
        & ~(lower_url.str.ends_with(".svg") | lower_url.str.ends_with(".gif"))
    )
    normalized = pl.coalesce(
        alt_text.map_batches(entity_rows, return_dtype=pl.Utf8, is_elementwise=True),
        clean(alt_text),
    )
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
