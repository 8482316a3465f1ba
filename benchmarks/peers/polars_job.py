"""The peers benchmark's pipeline as one lazy Polars query: the floor the others are held to.

    python polars_job.py SOURCE_DIR OUTPUT.parquet

Scans the Parquet parts, keeps ``url`` starting with 'http' and ``alt_text`` of at least 3
characters, keeps the first row of each url in input order (files in name order, rows in file
order: curate's ``exact_dedup`` ``keep: first``), streams to Parquet. Prints ``{"rows": N}``.
"""

from __future__ import annotations

import json
import sys

import polars as pl

MIN_LENGTH = 3


def pipeline(source: str) -> pl.LazyFrame:
    url, alt_text = pl.col("url"), pl.col("alt_text")
    return (
        pl.scan_parquet(f"{source}/*.parquet")
        .filter(url.str.starts_with("http") & (alt_text.str.len_chars() >= MIN_LENGTH))
        .unique(subset=["url"], keep="first", maintain_order=True)
    )


def main() -> None:
    source, output = sys.argv[1:3]
    pipeline(source).sink_parquet(output, compression="zstd")
    print(json.dumps({"rows": pl.scan_parquet(output).select(pl.len()).collect().item()}))


if __name__ == "__main__":
    main()
