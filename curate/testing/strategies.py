"""Hypothesis strategies for image–alt-text tables (like ``polars.testing.parametric``).

Tables have the canonical columns (``uid``, ``url``, ``alt_text``) and whatever extra columns
you ask for. They include what web data really throws at a step: unicode of every script,
HTML entities, control characters, empty and huge alt-texts, nulls and duplicate rows.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from hypothesis import strategies as st

WEB_NOISE = ["&amp;", "&quot;", "&#39;", "&lt;b&gt;", "&amp;amp;", "\u200b", "\x00", "\t", "\n", "  ", "\u00a0",
             "IMG_2041.jpg", "click here", "e\u0301", "\ufeff", "🙂", "東京タワー", "مرحبا"]


def alt_texts(max_size: int = 300, allow_huge: bool = True) -> st.SearchStrategy[str]:
    """Alt-text as the web writes it: mixes of words, entities, control chars and scripts."""
    pieces = st.one_of(
        st.text(max_size=20),
        st.sampled_from(WEB_NOISE),
        st.sampled_from(["a", "red", "circle", "photo", "of", "the", "Zorblax Tower", "on", "blue"]),
    )
    normal = st.lists(pieces, max_size=12).map(" ".join).map(lambda s: s[:max_size])
    options = [st.just(""), normal, normal]
    if allow_huge:
        options.append(st.integers(1000, 5000).map(lambda n: ("word " * n)[:n]))
    return st.one_of(*options)


def urls() -> st.SearchStrategy[str]:
    return st.builds(
        lambda scheme, host, n, ext: f"{scheme}://{host}/img/{n}.{ext}",
        st.sampled_from(["http", "https"]),
        st.sampled_from(["example.com", "cdn.example.org", "127.0.0.1:8080"]),
        st.integers(0, 10_000),
        st.sampled_from(["jpg", "png", "webp"]),
    )


def _uid(index: int) -> str:
    import hashlib

    return hashlib.md5(str(index).encode()).hexdigest()[:16]


@st.composite
def tables(
    draw: Any,
    min_rows: int = 0,
    max_rows: int = 40,
    nulls: bool = True,
    duplicates: bool = True,
    extra_columns: dict[str, st.SearchStrategy[Any]] | None = None,
    extra_dtypes: dict[str, pl.DataType] | None = None,
) -> pl.DataFrame:
    """A table with unique ``uid``s; with ``duplicates`` some rows repeat another's content.

    ``extra_columns`` (name → strategy of one cell) adds columns; give each one's type in
    ``extra_dtypes`` (``{"score": pl.Float64}``). Without it the type is what polars infers from
    the values drawn, and a column drawn all null (or a table of no rows) is typed ``Null``, which
    any declared ``reads`` type accepts: the step is then tested on a column it never sees in a run."""
    n = draw(st.integers(min_rows, max_rows))
    texts = alt_texts() if not nulls else st.one_of(st.none(), alt_texts(), alt_texts())
    link = urls() if not nulls else st.one_of(urls(), urls(), urls(), st.none())
    rows: list[dict[str, Any]] = []
    for i in range(n):
        if duplicates and rows and draw(st.integers(0, 4)) == 0:
            row = dict(rows[draw(st.integers(0, len(rows) - 1))])
        else:
            row = {"url": draw(link), "alt_text": draw(texts)}
            for name, strategy in (extra_columns or {}).items():
                row[name] = draw(strategy)
        row["uid"] = _uid(i)
        rows.append(row)
    schema: dict[str, pl.DataType] = {"uid": pl.Utf8, "url": pl.Utf8, "alt_text": pl.Utf8}
    schema.update(extra_dtypes or {})
    for name in extra_columns or {}:
        schema.setdefault(name, None)  # type: ignore[arg-type]
    columns = {name: [r.get(name) for r in rows] for name in ["uid", "url", "alt_text", *(extra_columns or {})]}
    series = {}
    for name, values in columns.items():
        try:
            series[name] = pl.Series(name, values, dtype=schema.get(name))
        except (TypeError, OverflowError, pl.exceptions.PolarsError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise ValueError(f"tables(): extra column '{name}' drew values polars cannot hold as "
                             f"{schema.get(name) or 'one type'} ({type(exc).__name__}: {first}); "
                             "bound its strategy (st.integers(-2**63, 2**63 - 1)) and give its type in "
                             "extra_dtypes") from exc
    return pl.DataFrame(series)


def scores(min_value: float = -1.0, max_value: float = 1.0) -> st.SearchStrategy[float | None]:
    return st.one_of(st.none(), st.floats(min_value, max_value, allow_nan=False))


# Shapes the web serves that no model should train on, and the edges of image_filter's defaults
# (shorter side 32, 10 : 1): tracking pixels, spacer strips either way, icons, an ad banner.
DEGENERATE_SIZES = [(1, 1), (20_000, 10), (10, 20_000), (16, 16), (1, 400), (728, 90), (31, 31), (32, 32),
                    (320, 32), (32, 321), (0, 0), (0, 50)]


def image_sizes(max_side: int = 20_000, zero: bool = True) -> st.SearchStrategy[tuple[int, int]]:
    """(width, height) of an image: any, thin strips either way, and :data:`DEGENERATE_SIZES` within
    ``max_side``. ``zero``: also a side of 0, which a table's size columns may claim and no image
    file has (leave it out for sizes to write files of)."""
    side = st.integers(1, max_side)
    thin = st.integers(1, min(40, max_side))
    shapes = [st.tuples(side, side), st.tuples(thin, side), st.tuples(side, thin)]
    edges = [size for size in DEGENERATE_SIZES if max(size) <= max_side and (zero or min(size) > 0)]
    return st.one_of(*shapes, st.sampled_from(edges))


def shard_sizes() -> st.SearchStrategy[int]:
    return st.sampled_from([1, 2, 3, 7, 16, 1000])


# What the relational steps of the built-in basics plugin are given by specs(): each plans over a
# table of tables(), whatever came before it.
_WHERE = ["length(alt_text) >= 3", "alt_text IS NOT NULL", "url LIKE '%1%'", "true", "uid < '8'"]


@st.composite
def specs(draw: Any, source_path: str = "data.parquet", max_steps: int = 5,
          run_dir: str | None = None) -> dict[str, Any]:
    """A spec as data (what ``yaml.safe_load`` of a spec file gives) over a Parquet source at
    ``source_path`` holding a table of :func:`tables`, and the built-in basics plugin's relational
    steps (``normalize_text``, ``filter``, ``sample``, ``exact_dedup``) in any order, with any run
    settings that change how it runs (shard size, seed, fusion), sometimes a Parquet output: for
    properties of what takes a spec (``curate.run``, ``curate.plan_spec``, a spec's load and dump)."""
    steps: list[dict[str, Any]] = []
    for index in range(draw(st.integers(0, max_steps))):
        kind = draw(st.sampled_from(["normalize_text", "filter", "sample", "exact_dedup"]))
        params: dict[str, Any]
        if kind == "normalize_text":
            params = {"max_length": draw(st.one_of(st.none(), st.integers(1, 300))),
                      "strip_tags": draw(st.booleans()), "empty": draw(st.sampled_from(["keep", "null", "drop"]))}
        elif kind == "filter":
            params = {"where": draw(st.sampled_from(_WHERE)), "keep_null": draw(st.booleans())}
            if draw(st.booleans()):
                params["reason"] = draw(st.sampled_from(["too_short", "no_text", "odd"]))
        elif kind == "sample":
            params = {"fraction": draw(st.floats(0.05, 1.0, allow_nan=False)),
                      "seed": draw(st.one_of(st.none(), st.integers(0, 2**31)))}
        else:
            params = {"columns": draw(st.sampled_from([["url"], ["alt_text"], ["url", "alt_text"]])),
                      "keep": draw(st.sampled_from(["first", "last"]))}
        step: dict[str, Any] = {"step": kind, "params": params}
        if any((s.get("name") or s["step"]) == kind for s in steps):
            step["name"] = f"{kind}_{index}"
        steps.append(step)
    run: dict[str, Any] = {"seed": draw(st.integers(0, 2**31)), "shard_size": draw(shard_sizes()),
                           "fuse": draw(st.booleans()), "fuse_heads": draw(st.booleans()), "report": False}
    if run_dir is not None:
        run["dir"] = run_dir
    spec: dict[str, Any] = {"name": draw(st.from_regex(r"[a-z][a-z0-9_-]{0,11}", fullmatch=True)),
                            "source": {"format": "parquet", "path": source_path}, "steps": steps, "run": run}
    if draw(st.booleans()):
        spec["outputs"] = [{"format": "parquet", "path": "out.parquet"}]
    return spec
