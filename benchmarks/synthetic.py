"""Synthetic web metadata (url, alt_text) with the noise real alt-text has, generated fast.

Every row's content is a pure function of a "base" row number, computed with a vectorized
integer hash (splitmix64), so a table of any size is generated chunk by chunk in bounded
memory, duplicates can point at any earlier row (across files), and the same arguments always
give the same bytes. About 8% of rows are exact copies of an earlier row and 2% differ from an
earlier row only in surrounding whitespace (duplicates once normalized).

Noise, per word (about 1.5% of words): HTML entities, including double-escaped ones and a
bare ``&``; control, zero-width and no-break characters; empty tokens (double spaces); non-
Latin scripts, emoji and decomposed accents (NFC changes them). Per row: ~1% null alt-text,
~2% empty, ~5% wrapped in whitespace, lengths from one word to a hundred, a few ``data:``
URLs, SVGs and GIFs for a filter to remove.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

GENERATOR_VERSION = 1  # bump when the output changes, so cached tables are regenerated
CHUNK_ROWS = 1_000_000  # rows per Parquet file

EXACT_DUPLICATES = 0.08
NEAR_DUPLICATES = 0.02
NOISE_PER_WORD = 0.015

COMMON_WORDS = """
photo of a the with and in on for by at from to woman man girl boy dog cat house car red blue
white black green yellow pink vintage wedding dress logo icon image picture stock background
vector illustration beautiful new modern kitchen design ideas sale best 2019 2020 2021 free
download HD wallpaper small large garden beach sunset city street food recipe chicken cake
shoes shirt men's women's kids baby toy book cover art painting drawing flower tree mountain
lake river sky night light lamp chair table sofa bed room bathroom wall floor door window
party birthday christmas holiday travel hotel resort pool map chart graph screenshot game
team player football soccer basketball music concert guitar piano portrait face hair eyes
smile happy young old family friends people business office computer phone laptop watch ring
necklace gold silver diamond jewelry bag leather cotton print pattern texture close-up view
top side front back detail set pack collection series edition Amazon.com Buy Online Shop
""".split()  # noqa: SIM905 - a word list reads better as text

NOISE_TOKENS = [
    # HTML entities: the slow path of any normalizer (and "AT&T" is a bare '&', not an entity)
    "&amp;", "&quot;", "&#39;", "&nbsp;", "&amp;amp;", "&lt;b&gt;", "R&amp;D", "caf&eacute;",
    "&#8217;s", "AT&T", "&copy;", "&hellip;",
    # control, zero-width, no-break and odd whitespace
    "\x00", "\x07", "\t", "\n", "\r\n", "\u200b", "\ufeff", "\xa0", "", "   ", "\x1b[0m",
    # scripts, emoji, decomposed accents (NFC composes them)
    "e\u0301te\u0301", "日本語の写真", "Ελλάδα", "😀", "Ａｍａｚｏｎ", "naïve", "São Paulo",
]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64: a fast, well-mixed uint64 → uint64 hash (wraps on overflow by design)."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x += _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniform(x: np.ndarray, salt: int) -> np.ndarray:
    """A float in [0, 1) per element, a pure function of (x, salt)."""
    with np.errstate(over="ignore"):
        h = mix(x * np.uint64(0x100000001B3) + np.uint64(salt))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _vocabulary(seed: int) -> list[str]:
    """Common alt-text words, then a long tail of made-up words (rarer as the index grows)."""
    syllables = ["ka", "lo", "mi", "ra", "tes", "on", "ber", "gal", "dun", "shi", "pe", "vor",
                 "an", "el", "quin", "tra", "zo", "ni", "mar", "cel", "by", "ust", "ven", "ho"]
    rng = np.random.default_rng(seed)
    tail = set()
    while len(tail) < 5000:
        count = int(rng.integers(1, 5))
        tail.add("".join(syllables[i] for i in rng.integers(0, len(syllables), count)))
    return COMMON_WORDS + sorted(tail)


def _chunk(start: int, stop: int, seed: int) -> pl.DataFrame:
    rows = np.arange(start, stop, dtype=np.uint64)
    salt = np.uint64(seed) << np.uint64(32)
    n = len(rows)

    # Which earlier row (if any) this one copies.
    pick = uniform(rows ^ salt, 1)
    earlier = (uniform(rows ^ salt, 2) * rows.astype(np.float64)).astype(np.uint64)
    exact = (pick < EXACT_DUPLICATES) & (rows > 0)
    near = (pick >= EXACT_DUPLICATES) & (pick < EXACT_DUPLICATES + NEAR_DUPLICATES) & (rows > 0)
    base = np.where(exact | near, earlier, rows)
    key = base ^ salt

    # Words per row: empty (2%), one word (2%), typical (2-13), long (14-103, 5%).
    u = uniform(key, 3)
    spread = uniform(key, 4)
    words = np.where(u < 0.02, 0, np.where(u < 0.04, 1, np.where(
        u < 0.95, 2 + (spread * 12).astype(np.int64), 14 + (spread * 90).astype(np.int64))))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(words, out=offsets[1:])
    total = int(offsets[-1])
    owner = np.repeat(np.arange(n), words)
    position = np.arange(total, dtype=np.int64) - offsets[owner]
    with np.errstate(over="ignore"):
        word_key = key[owner] * np.uint64(1_000_003) + position.astype(np.uint64)
    vocabulary = _vocabulary(seed)
    zipf = (uniform(word_key, 5) ** 4 * len(vocabulary)).astype(np.int64)
    noisy = uniform(word_key, 6) < NOISE_PER_WORD
    noise_index = (uniform(word_key, 7) * len(NOISE_TOKENS)).astype(np.int64)
    index = np.where(noisy, len(vocabulary) + noise_index, zipf)
    tokens = pa.array(vocabulary + NOISE_TOKENS, pa.large_string())
    texts = pa.LargeListArray.from_arrays(pa.array(offsets), tokens.take(pa.array(index)))

    domain = (uniform(key, 8) ** 3 * 5000).astype(np.int64)
    scheme = uniform(key, 9)
    kind = uniform(key, 10)
    wrap = uniform(key, 11) < 0.05
    null = uniform(key, 12) < 0.01

    frame = pl.DataFrame({
        "words": pl.from_arrow(texts),
        "base": base,
        "domain": domain,
        "https": scheme < 0.8,
        "kind": kind,
        "wrap": wrap,
        "near": near,
        "null": null,
    })
    extension = (
        pl.when(pl.col("kind") < 0.70).then(pl.lit("jpg"))
        .when(pl.col("kind") < 0.85).then(pl.lit("png"))
        .when(pl.col("kind") < 0.91).then(pl.lit("webp"))
        .when(pl.col("kind") < 0.95).then(pl.lit("gif"))
        .when(pl.col("kind") < 0.98).then(pl.lit("svg"))
        .otherwise(pl.lit("JPG"))
    )
    url = (
        pl.when(pl.col("kind") >= 0.99)
        .then(pl.format("data:image/png;base64,iVBORw0KGgo{}", pl.col("base")))
        .otherwise(pl.format(
            "{}://cdn{}.shop-images.example/uploads/{}/{}/{}-800x600.{}",
            pl.when(pl.col("https")).then(pl.lit("https")).otherwise(pl.lit("http")),
            pl.col("domain"),
            2010 + pl.col("base") % 15,
            1 + pl.col("base") % 12,
            pl.col("base"),
            extension,
        ))
    )
    text = pl.col("words").list.join(" ")
    text = (
        pl.when(pl.col("null")).then(pl.lit(None, pl.Utf8))
        .when(pl.col("near")).then(pl.concat_str([pl.lit("\t"), text, pl.lit("  ")]))
        .when(pl.col("wrap")).then(pl.concat_str([pl.lit(" "), text, pl.lit(" \n")]))
        .otherwise(text)
    )
    return frame.select(url.alias("url"), text.alias("alt_text"))


def metadata_table(rows: int, directory: Path, seed: int = 0) -> Path:
    """Parquet files with ``rows`` rows in ``directory/metadata-<rows>-s<seed>-v<version>/``;
    reused when already complete. Returns the directory (a curate ``source.path``)."""
    out = directory / f"metadata-{rows}-s{seed}-v{GENERATOR_VERSION}"
    done = out / "_GENERATED.json"
    if done.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.parquet"):
        stale.unlink()
    for part, start in enumerate(range(0, rows, CHUNK_ROWS)):
        chunk = _chunk(start, min(start + CHUNK_ROWS, rows), seed)
        chunk.write_parquet(out / f"part-{part:05d}.parquet", compression="zstd")
    done.write_text(json.dumps({"rows": rows, "seed": seed, "version": GENERATOR_VERSION}) + "\n")
    return out


def describe(path: Path) -> dict[str, float | int]:
    """Facts about a generated table, to check the noise is what the docstring promises."""
    lf = pl.scan_parquet(str(path / "*.parquet"))
    text = pl.col("alt_text")
    facts = lf.select(
        rows=pl.len(),
        null_alt_text=text.is_null().mean(),
        empty_alt_text=(text == "").mean(),
        with_ampersand=text.str.contains("&", literal=True).mean(),
        with_control=text.str.contains(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]").mean(),
        mean_chars=text.str.len_chars().mean(),
        max_chars=text.str.len_chars().max(),
        exact_duplicate_rows=1 - pl.struct("url", "alt_text").n_unique() / pl.len(),
    ).collect().row(0, named=True)
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in facts.items()}
