"""``strip_boilerplate``: remove stock-site and camera-file-name boilerplate from alt-text.

Web alt-text carries the stock site's label around the description ("Stock Vector - A red
circle. ID 959669720") and the camera's file name next to it ("(IMG_1234.jpg)"); CLIP scoring
and captioning should see the description only. Every pattern runs in polars' Rust regex
engine, which is linear in the text, so a user's pattern cannot hang a run.

``keywords: true`` also removes a trailing list of search keywords (curate_basics.keywords, in
Python: it counts and compares words, which a regex cannot).

Removing one piece can uncover another ("(IMG_1(IMG_2.jpg).jpg)"), so the removal is repeated
while it changes a text, at most :data:`ROUNDS` times and a pass more to see it is done; a text
still changing then stays as it came. Either way a second run changes nothing more.
"""

from __future__ import annotations

from typing import Annotated, Literal

import polars as pl
from pydantic import Field, field_validator, model_validator

from curate.params import Params
from curate.schema import ALT_TEXT, DROP_REASON, UID, Schema
from curate.step import Step, StepContext
from curate_basics.keywords import strip_keywords_series

WORDS = "photo|image|vector|illustration"
KIND = f"(?:{WORDS})"
SEPARATORS = r"[\s\-–—|:,]"  # whitespace and the separators trimmed from a stripped text's ends
# After a stock label or id at the end: separators and the emoji or symbols pages append to it
# ("… ID 708048114 🔥", "| Stock Illustration ID 405695219 💯✨⭐"); they go with it.
TAIL = r"[\s\-–—|:,\p{So}\p{Sk}\x{200D}\x{FE0F}]"
# Stock labels in front: "Stock Photo - ", "Stock Vector: ", any spaces, repeated.
PREFIX = rf"(?i)^{SEPARATORS}*(?:stock\s+(?:{WORDS}|footage)\s*[-–—:]\s*)+"
# Stock labels and ids at the end, in any order and number: " - Royalty Free Stock Image",
# " | Stock Illustration ID 683718001", " stock photo 123456789", ". ID 959669720", " - 123456789".
SUFFIX = (rf"(?i)(?:\s*[-–—:]\s*(?:royalty[\s-]*free\s+)?stock\s+{KIND}"
          rf"|\s*\|\s*stock\s+{KIND}(?:\s+id\s*[0-9]+)?"
          rf"|\s+stock\s+{KIND}\s+[0-9]{{5,}}"
          r"|(?:\.\s*|\s+)id\s*[:#]?\s*[0-9]{5,}"
          r"|\s+[-–—]\s*[0-9]{6,}"
          rf")+{TAIL}*$")
# A camera's file name in parentheses, anywhere, with the space before it: " (IMG_1234.jpg)".
IMAGE_FILE_END = r"[0-9]+(?:[_~-][0-9a-z]+)*\.(?:jpe?g|png|gif|webp|heic|tiff?|bmp)"  # "1234.jpg", "1234_2.png"
CAMERA = rf"(?i)\s*\(\s*(?:img|dsc[nf]?|pxl|image)[_-]?{IMAGE_FILE_END}\s*\)"
TRIM = rf"^{SEPARATORS}+|{SEPARATORS}+$"
# Alt-text that says nothing about its image, as a whole: generic words for "an image", link and
# button labels, placeholders, a camera's or a bare number's file name, "3 of 12" — with digits,
# punctuation, symbols and emoji around them. A generic word cut short at the end counts after a
# generic word ("image-cop") or before an ellipsis ("imag...", "see m…"), from its third
# character; alone and without one it does not ("Zoo", "Cop" and "Space" are words of their own).
# Anything else in the text (a colour, a name, "a", "of" outside "3 of 12") keeps it.
GENERIC_WORDS = (
    "image", "images", "img", "photo", "photos", "photograph", "picture", "pictures", "pic", "pics",
    "foto", "fotos", "imagen", "bild", "thumbnail", "thumbnails", "thumb", "banner", "untitled",
    "placeholder", "default", "blank", "spacer", "copy", "screenshot", "screen shot", "stock", "file",
    "click here", "click", "here", "see more", "read more", "learn more", "more", "view", "zoom",
    "enlarge", "open", "download", "download now", "now", "no image", "image not found", "not found",
    "no description", "no description available", "description", "alt", "alt text", "null",
    "undefined", "none", "n/a",
    # what stock and clip-art sites append for search engines, never about the image's content
    "jpg", "jpeg", "png", "gif", "webp", "hd", "4k", "free", "royalty free", "transparent", "isolated",
    "vector", "clipart", "clip art", "icon", "template", "cheap", "best",
)
FILE_NAME = rf"(?:(?:img|dsc[nf]?|pxl|image|photo|pic|screenshot)[_-]?)?{IMAGE_FILE_END}"
FILLER = r"[\s\p{P}\p{S}\p{Nd}\x{200D}\x{FE0F}]*"
ELLIPSIS = r"\s*(?:\.\.\.|…)"


def _generic_pattern() -> str:
    def phrase(text: str) -> str:
        return r"[\s_-]+".join(text.split())  # "see more", "see_more", "see-more"

    words = sorted(GENERIC_WORDS, key=len, reverse=True)
    token = "(?:" + "|".join([FILE_NAME, r"[0-9]+\s+of\s+[0-9]+"] + [phrase(w) for w in words]) + r")\b"
    # longest first, then alphabetically: the same pattern in every process (a set's order is not)
    cuts = sorted({w[:n] for w in GENERIC_WORDS for n in range(3, len(w)) if w[n - 1] != " "},
                  key=lambda cut: (-len(cut), cut))
    cut = "(?:" + "|".join(phrase(c) for c in cuts) + ")"
    return (rf"(?i)^{FILLER}(?:(?:{token}{FILLER})+(?:{cut}{FILLER})?"
            rf"|(?:{token}{FILLER})*{cut}{ELLIPSIS}{FILLER})$")


GENERIC = _generic_pattern()
ROUNDS = 4
EMPTIED = "only_boilerplate"
MAX_PATTERNS = 64


def regex_problem(pattern: str) -> str | None:
    """Why polars' regex engine refuses ``pattern`` (its own words, on one line), or None."""
    try:
        pl.Series([], dtype=pl.Utf8).str.contains(pattern)
    except pl.exceptions.ComputeError as exc:
        text = str(exc).split("\n\nThis error occurred")[0].removeprefix("regex error: ")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
        return "; ".join(errors) or " ".join(lines)
    return None


class StripParams(Params):
    columns: list[str] = Field([ALT_TEXT], min_length=1, description="text columns to strip")
    stock: bool = Field(True, description="stock-site labels and ids at the start or end")
    camera: bool = Field(True, description="camera file names in parentheses: (IMG_1234.jpg)")
    keywords: bool = Field(False, description="a trailing list of search keywords (', free, download, png, hd', "
                           "'isolated png best'; curate_basics.keywords)")
    generic: bool = Field(False, description="empty a text that is only generic words (image, photo, thumbnail, "
                          "click here, untitled, a camera file name, '3 of 12'...), digits, punctuation and emoji")
    patterns: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        [], max_length=MAX_PATTERNS, description="more regexes (Rust syntax), removed wherever they match")
    empty: Literal["keep", "null", "drop"] = Field(
        "keep", description="a text stripping would empty: keep it as it came, make it null, or drop the row")

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        problems = [f"pattern {p!r} does not compile: {why}" for p in patterns if (why := regex_problem(p))]
        if problems:
            raise ValueError("; ".join(problems))
        return patterns

    @model_validator(mode="after")
    def _not_uid(self) -> StripParams:
        if UID in self.columns:
            raise ValueError("'uid' cannot be stripped: it identifies each row (strip a copy in another "
                             "column, made with an sql step)")
        return self


class StripBoilerplate(Step):
    name = "strip_boilerplate"
    thread_safe = True
    description = "remove stock-site labels, ids and camera file names from alt-text"
    Params = StripParams

    def input_columns(self) -> Schema:
        return {c: pl.Utf8 for c in self.params.columns}

    @property
    def drops_rows(self) -> bool:  # type: ignore[override]
        return self.params.empty == "drop"

    def _round(self, text: pl.Expr) -> pl.Expr:
        p = self.params
        out = text
        if p.stock:
            out = out.str.replace(PREFIX, "").str.replace(SUFFIX, "")
        if p.camera:
            out = out.str.replace_all(CAMERA, "")
        for pattern in p.patterns:
            out = out.str.replace_all(pattern, "")
        if p.keywords:
            out = out.map_batches(strip_keywords_series, return_dtype=pl.Utf8)
        if p.generic:
            out = out.str.replace(GENERIC, "")  # anchored at both ends: the whole text or nothing
        # Only a text that lost something is trimmed: "- a list item" without boilerplate stays.
        return pl.when(out != text).then(out.str.replace_all(TRIM, "")).otherwise(text)

    def strip(self, column: pl.Series) -> pl.Series:
        """Each text without its boilerplate (module docstring); nulls stay null."""
        column = column.cast(pl.Utf8)
        rows = column.is_not_null().arg_true()
        current, out = column.gather(rows), column.clone()
        for _ in range(ROUNDS + 1):  # the last pass only shows which rows are done
            if not len(rows):
                break
            after = pl.DataFrame({"t": current}).select(self._round(pl.col("t")))["t"]
            out = out.scatter(rows, after)
            changed = after != current
            rows, current = rows.filter(changed), after.filter(changed)
        if len(rows):  # still changing: as it came, so that a second run changes nothing either
            out = out.scatter(rows, column.gather(rows))
        return out

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        empty = self.params.empty
        before = {name: table[name].cast(pl.Utf8) for name in self.params.columns}
        after = {name: self.strip(column) for name, column in before.items()}
        lost = {name: ((after[name] == "") & (before[name] != "")).fill_null(False) for name in before}
        if empty == "drop":  # a dropped row keeps every column as it came, to show what was removed
            emptied = pl.select(pl.any_horizontal(list(lost.values()))).to_series()
            lost = dict.fromkeys(lost, emptied)
        instead = {name: pl.lit(None, pl.Utf8) if empty == "null" else before[name] for name in before}
        out = table.with_columns(pl.when(lost[name]).then(instead[name]).otherwise(after[name]).alias(name)
                                 for name in before)
        if empty == "drop":
            reason = pl.when(emptied).then(pl.lit(EMPTIED)).otherwise(pl.lit(None, pl.Utf8))
            out = out.with_columns(reason.alias(DROP_REASON))
        return out
