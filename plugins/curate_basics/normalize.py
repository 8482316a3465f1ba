"""``normalize_text``: clean alt-text the way web text needs it.

HTML entities are unescaped (to a fixed point: web text is often escaped twice), HTML tags
optionally replaced by a space (``strip_tags``), control characters replaced by a space and the
invisible characters that carry no meaning removed (``strip_control``: the exact rule, and which
invisible characters are kept, is :mod:`curate_basics.invisible`'s), Unicode normalized,
whitespace collapsed, length bounded. Lengths count code points (``len`` in Python, DuckDB's
``length``), not user-perceived characters: ``👨‍👩‍👧‍👦`` is 7. ``max_length`` cuts at the last
grapheme cluster boundary within it (:mod:`curate_basics.graphemes`), never inside a flag, an
emoji sequence or a letter with its marks. The operation is idempotent: normalizing twice changes
nothing more.

Each level of escaping ("&amp;amp;") or of nested tags ("<b<b>>") takes one more pass over the
whole text, so a text escaped 10^5 times over would take 10^5 passes of 400 000 characters (hours).
A text is followed through at least :data:`MIN_ROUNDS` passes, and through more while its passes
have read fewer than :data:`ROUND_WORK` characters in all (a text of 2 000 characters that NFKC
does not lengthen, through as many passes as it can need); a text still changing then is dropped
as ``text_nested_too_deep``, its columns as they came. Web text is escaped twice at most.
"""

from __future__ import annotations

import html
import html.entities
import re
import unicodedata
from typing import Literal

import polars as pl
from pydantic import Field, model_validator

from curate.params import Params
from curate.schema import ALT_TEXT, DROP_REASON, UID, Schema
from curate.step import Step, StepContext
from curate_basics import graphemes
from curate_basics.invisible import CONTROL, STRIP

CONTROL_RE = re.compile(CONTROL)
STRIP_RE = re.compile(STRIP)
# Python's \s (and str.strip) count the separators U+001C-U+001F as whitespace, the Rust regex
# engine polars uses does not; naming them makes the vectorized path agree with normalize_one.
WHITESPACE = r"[\s\x1c-\x1f]+"
WHITESPACE_RE = re.compile(WHITESPACE)
# Printable ASCII words separated by single spaces, nothing around them. No step of the
# vectorized path changes such a text (NFC and NFKC leave ASCII alone; there is no control,
# zero-width or repeated whitespace to remove), so it skips them: most web alt-text is plain.
PLAIN = r"^[!-~]+(?: [!-~]+)*$"
NON_ASCII = r"[^\x00-\x7f]"
# Entities unescaped vectorized, each to what html.unescape makes of it alone: every named
# entity written with its ';' and the numeric ones web text uses. Each starts with '&', ends with
# its first ';' and has no other '&', so no two match at one place and html.unescape's own
# pattern matches exactly them there: replacing every occurrence in one pass is what
# html.unescape does to a text whose every '&' starts one of them.
ENTITIES = sorted(
    {f"&{name}" for name in html.entities.html5 if name.endswith(";")}
    | {f"&#{n};" for n in (*range(1024), *range(0x2000, 0x2070), 0x20AC, 0x2122)}
    | {f"&#{x}{h};" for n in range(256) for x in "xX" for h in (f"{n:x}", f"{n:X}")}
)
UNESCAPED = [html.unescape(entity) for entity in ENTITIES]
NOTHING = [""] * len(ENTITIES)
# A bare '&' html.unescape leaves alone ("AT&T", "fish & chips"): followed by the end, a
# character no entity name starts with, or one name character and then such a character (no
# entity's name is one character long). Never ending in '&', so a match hides no other '&'.
BARE = r"&(?:[\t\n\f <;]|$)|&[^\t\n\f <&#;](?:[\t\n\f <#]|$)"
# An HTML tag as templates leak them into alt-text: "<b>", "</span>", '<span class="x">', "<br/>".
# No whitespace after '<' ("a < b > c" stays), HTML's own whitespace only (Python's \s and the
# Rust regex polars uses disagree on some separators), the same pattern for both paths.
TAG = r"</?[A-Za-z][A-Za-z0-9-]*(?:[\t\n\f\r ][^<>]*)?/?>"
TAG_RE = re.compile(TAG)
# Vectorized rounds before the rows still changing go to the reference function: each level of
# escaping ("&amp;amp;") takes one round, and two rounds are rare already.
ROUNDS = 6
# The reference function's bound (module docstring): rounds every text gets, and characters its
# rounds may read in all before it stops (about a tenth of a second).
MIN_ROUNDS = 16
ROUND_WORK = 1 << 22
TOO_NESTED = "text_nested_too_deep"
# Texts unicodedata normalizes (quadratic in a run of combining marks, so at most a few ms here).
UNICODEDATA_LENGTH = 1000
LONG_TEXT_BYTES = 1 << 16  # longer texts' characters are collected in Python (_unknown_to_python)
# A decimal character reference of more digits than Python converts to an int (4300) made
# html.unescape raise ValueError. Its leading zeros aside, one of 8 digits or more is past
# U+10FFFF, which html.unescape makes U+FFFD: such digits are written as 1114112 first.
LONG_DECIMAL_RE = re.compile(r"&#([0-9]{16,})")


class NormalizeParams(Params):
    columns: list[str] = Field([ALT_TEXT], min_length=1, description="text columns to normalize")
    html_unescape: bool = True
    strip_tags: bool = Field(False, description="replace HTML tags (<b>, </p>, <br/>, <span class=...>) by a space")
    strip_control: bool = Field(True, description="replace control characters by a space and remove the "
                                "invisible ones that hide or reorder text (bidi overrides, zero width space, "
                                "tag characters); keeps ZWJ, ZWNJ and the bidi marks "
                                "(curate_basics.invisible)")
    unicode_form: Literal["NFC", "NFKC", "none"] = "NFC"
    collapse_whitespace: bool = True
    max_length: int | None = Field(None, gt=0, le=2**31 - 1,
                                   description="cut longer texts to at most this many code points, at a "
                                   "grapheme cluster boundary (never inside an emoji, a flag or a letter's "
                                   "marks)")
    min_length: int = Field(0, ge=0, le=2**31 - 1,
                            description="drop rows whose first column has fewer code points (after cleaning)")
    empty: Literal["keep", "null", "drop"] = Field("keep", description="texts that end up empty (or are null): keep, "
                                                   "null them (every column), or drop the row (judged on the first "
                                                   "column, as min_length)")

    @model_validator(mode="after")
    def _bounds(self) -> NormalizeParams:
        if UID in self.columns:
            raise ValueError("'uid' cannot be normalized: it identifies each row (normalize a copy in another "
                             "column, made with an sql step)")
        if self.max_length is not None and self.min_length > self.max_length:
            raise ValueError(f"min_length ({self.min_length}) is greater than max_length ({self.max_length})")
        return self


class TextTooNested(ValueError):
    """A text still changing after the rounds :func:`normalize_one` follows it through."""


def _short_decimal(match: re.Match[str]) -> str:
    digits = match.group(1).lstrip("0")
    return "&#" + (digits if len(digits) <= 7 else "1114112") if digits else "&#0"


def unescape(text: str) -> str:
    """``html.unescape``, also of a decimal character reference too long for ``int``."""
    return html.unescape(LONG_DECIMAL_RE.sub(_short_decimal, text) if "&#" in text else text)


def unicode_normalize(form: Literal["NFC", "NFKC"], text: str) -> str:
    """``unicodedata.normalize(form, text)`` in linear time.

    CPython puts each run of combining marks in order by insertion: a run of 60 000 alternating
    marks took 3 s, longer ones hours. Texts shorter than :data:`UNICODEDATA_LENGTH` are left to
    it (fast, and a few milliseconds at worst); longer ones to :func:`normalize_in_pieces`."""
    if len(text) < UNICODEDATA_LENGTH or text.isascii():
        return unicodedata.normalize(form, text)
    return normalize_in_pieces(form, text)


def normalize_in_pieces(form: Literal["NFC", "NFKC"], text: str) -> str:
    """``unicodedata.normalize(form, text)`` by polars, which normalizes in linear time. Unicode
    never changes the decomposition or combining class of a code point once assigned, so the two
    agree on every code point Python knows (as the vectorized path relies on); one Python does not
    know combines with nothing in ``unicodedata`` (a starter, in no composition), so the text is cut
    there and polars normalizes the pieces."""
    unknown = sorted(c for c in set(text) if unicodedata.category(c) == "Cn")
    pieces = re.split(f"([{''.join(map(re.escape, unknown))}])", text) if unknown else [text]
    normalized = pl.Series(pieces[::2], dtype=pl.Utf8).str.normalize(form).to_list()
    pieces[::2] = normalized
    return "".join(pieces)


def normalize_one(text: str | None, p: NormalizeParams) -> str | None:
    """The reference implementation; the vectorized path must agree with it. Raises
    :class:`TextTooNested` for a text not done within its rounds (module docstring)."""
    if text is None:
        return None
    # To a fixed point, so the result is idempotent. The bound grows with the text: a fixed cap
    # (it was 8) left deeper escaping ("&amp;amp;amp;...") half done, so a second pass changed it.
    # Each level of escaping takes one round and at least three characters, so this always
    # suffices; the work bound stops the rounds of a text nested deeper than text is.
    length, read = len(text), 0
    for done in range(16 + length):
        if done >= MIN_ROUNDS and read >= ROUND_WORK:
            raise TextTooNested(f"a text of {length} characters still changed after {done} rounds of "
                                "unescaping and tag stripping")
        read += len(text)
        before = text
        if p.html_unescape and "&" in text:
            text = unescape(text)
        if p.strip_tags and "<" in text:
            text = TAG_RE.sub(" ", text)
        if p.strip_control:
            text = STRIP_RE.sub(r"\1", CONTROL_RE.sub(" ", text))
        if p.unicode_form != "none":
            text = unicode_normalize(p.unicode_form, text)
        if p.collapse_whitespace:
            text = WHITESPACE_RE.sub(" ", text).strip()
        if p.max_length is not None and len(text) > p.max_length:
            text = graphemes.cut(text, p.max_length)
            if p.collapse_whitespace:
                text = text.rstrip()
        if text == before:
            break
    return text


def _unknown_to_python(column: pl.Series) -> pl.Series:
    """Rows holding a code point that Python's Unicode database does not know yet. polars
    normalizes with a newer Unicode than ``unicodedata`` (NFKC maps U+1CCD6 to 'A', Python 3.11
    leaves it), so such rows take the reference path to agree with :func:`normalize_one`.
    Long texts' characters are collected by Python: polars' list of every character held five
    times the text (620 MB for one of 125 MB)."""
    long = (column.str.len_bytes() > LONG_TEXT_BYTES).fill_null(False)
    rare = set(column.filter(~long).str.extract_all(r"[^\x00-\x7f]").explode().drop_nulls().unique().to_list())
    for text in column.filter(long).to_list():
        rare.update(text)
    unknown = [c for c in rare if not c.isascii() and unicodedata.category(c) == "Cn"]
    if not unknown:
        return pl.Series([False] * column.len(), dtype=pl.Boolean)
    return column.str.contains_any(unknown).fill_null(False)


class NormalizeText(Step):
    name = "normalize_text"
    # 2: strip_control keeps ZWJ and ZWNJ and removes bidi controls, tag characters and the other
    # invisible characters of curate_basics.invisible; max_length cuts at a grapheme boundary
    version = "2"
    thread_safe = True
    description = "unescape HTML, strip control/invisible chars, normalize Unicode, whitespace, bound length"
    Params = NormalizeParams

    def input_columns(self) -> Schema:
        return {c: pl.Utf8 for c in self.params.columns}

    @property
    def drops_rows(self) -> bool:  # type: ignore[override]
        p = self.params  # unescaping and tag stripping drop a text nested too deep (TOO_NESTED)
        return p.min_length > 0 or p.empty == "drop" or p.html_unescape or p.strip_tags

    def _vectorized(self, column: pl.Series) -> pl.Series:
        p = self.params
        if p.strip_control:
            column = column.str.replace_all(CONTROL, " ")
        if p.strip_control or p.unicode_form != "none":
            # STRIP matches no ASCII, NFC and NFKC leave it alone, and most texts that get here are ASCII
            # (STRIP read every text 4 times slower than the search for non-ASCII does).
            wide = column.str.contains(NON_ASCII).fill_null(False).arg_true()
            if len(wide):
                texts = column.gather(wide)
                if p.strip_control:
                    texts = texts.str.replace_all(STRIP, "${1}")
                if p.unicode_form != "none":
                    texts = texts.str.normalize(p.unicode_form)
                column = column.clone().scatter(wide, texts)
        expr = pl.col("t")
        if p.collapse_whitespace:
            expr = expr.str.replace_all(WHITESPACE, " ").str.strip_chars()
        column = pl.DataFrame({"t": column}).select(expr)["t"]
        return column if p.max_length is None else self._bound(column, p.max_length)

    def _bound(self, column: pl.Series, length: int) -> pl.Series:
        """Texts longer than ``length`` cut as :func:`normalize_one` cuts them: at ``length`` where
        the two characters around the cut are ASCII and not CR LF (a grapheme cluster boundary
        always), by :func:`graphemes.cut` in Python where either is not (rare)."""
        long = (column.str.len_chars() > length).fill_null(False).arg_true()
        if not len(long):
            return column
        texts = column.gather(long)
        pair = texts.str.slice(length - 1, 2)
        unsure = (~pair.str.contains(r"^[\x00-\x7f]{2}$") | (pair == "\r\n")).fill_null(False)
        cut = texts.str.slice(0, length)
        if unsure.any():
            by_cluster = [graphemes.cut(text, length) for text in texts.filter(unsure).to_list()]
            cut = cut.scatter(unsure.arg_true(), pl.Series(by_cluster, dtype=pl.Utf8))
        if self.params.collapse_whitespace:
            cut = cut.str.strip_chars_end()
        return column.clone().scatter(long, cut)

    def _round(self, column: pl.Series) -> pl.Series:
        """One round of :func:`normalize_one`'s loop, for rows whose every '&' starts an entity
        of :data:`ENTITIES` (checked by the caller)."""
        if self.params.html_unescape:
            column = column.str.replace_many(ENTITIES, UNESCAPED)
        if self.params.strip_tags:
            column = column.str.replace_all(TAG, " ")
        return self._vectorized(column)

    def _plain(self, column: pl.Series) -> pl.Series:
        """Texts no round changes: :data:`PLAIN`, short enough, and no '&' to unescape."""
        p = self.params
        plain = column.str.contains(PLAIN).fill_null(True)
        if p.html_unescape:
            plain = plain & ~column.str.contains("&", literal=True).fill_null(False)
        if p.strip_tags:
            plain = plain & ~column.str.contains("<", literal=True).fill_null(False)
        if p.max_length is not None:
            plain = plain & (column.str.len_bytes() <= p.max_length).fill_null(True)
        return plain

    def normalize(self, column: pl.Series) -> pl.Series:
        """Vectorized rounds of :func:`normalize_one`'s loop to its fixed point; the reference
        function only for rows the vectorized round cannot do exactly (an '&' that neither
        starts one of :data:`ENTITIES` nor is :data:`BARE`, a code point Python does not know, or
        still changing after :data:`ROUNDS` rounds), so the result always equals
        :func:`normalize_one`. A text it finds too nested stays as it came."""
        return self.normalize_rows(column)[0]

    def normalize_rows(self, column: pl.Series) -> tuple[pl.Series, list[int]]:
        """:meth:`normalize`, and the positions of the texts too nested to normalize.

        Only rows a round could change go through it (most web alt-text is :data:`PLAIN`), and
        only rows the last round changed, and left not plain, go through the next one.
        """
        p = self.params
        rows = (~self._plain(column)).arg_true()
        out = column.clone()
        slow: list[pl.Series] = []
        if len(rows) and p.unicode_form != "none":  # plain rows are ASCII: every code point is known
            unknown = _unknown_to_python(column.gather(rows))
            if unknown.any():
                slow.append(rows.filter(unknown))
                rows = rows.filter(~unknown)
        current = column.gather(rows)
        for _ in range(ROUNDS):
            if not len(rows):
                break
            if p.html_unescape:
                # An '&' that is neither an entity of ENTITIES nor BARE needs html.unescape.
                left = current.str.replace_many(ENTITIES, NOTHING).str.replace_all(BARE, "")
                other = left.str.contains("&", literal=True).fill_null(False)
                if other.any():
                    slow.append(rows.filter(other))
                    rows, current = rows.filter(~other), current.filter(~other)
            after = self._round(current)
            out.scatter(rows, after)
            # A round changes a plain text no more: those rows are done without another round.
            changed = (after != current).fill_null(False) & ~self._plain(after)
            rows, current = rows.filter(changed), after.filter(changed)
        slow.append(rows)  # still changing after ROUNDS rounds (rare): finish in Python
        index = pl.concat(slow) if slow else rows
        too_nested: list[int] = []
        if len(index):
            fixed = []
            for position, value in zip(index.to_list(), column.gather(index).to_list(), strict=True):
                try:
                    fixed.append(normalize_one(value, self.params))
                except TextTooNested:
                    fixed.append(value)
                    too_nested.append(position)
            out = out.scatter(index, pl.Series(fixed, dtype=pl.Utf8))
        return out, too_nested

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        columns: dict[str, pl.Series] = {}
        too_nested: set[int] = set()
        for name in p.columns:
            # An all-null column of Polars' Null type is text with no values yet.
            columns[name], nested = self.normalize_rows(table[name].cast(pl.Utf8) if table[name].dtype == pl.Null
                                                        else table[name])
            too_nested.update(nested)
        nested_rows = pl.Series([False] * table.height, dtype=pl.Boolean)
        if too_nested:  # dropped with every column as it came
            nested_rows = nested_rows.scatter(sorted(too_nested), True)
            columns = {name: pl.select(pl.when(nested_rows).then(table[name].cast(pl.Utf8)).otherwise(column)).to_series()
                       for name, column in columns.items()}
        out = table.with_columns([s.alias(n) for n, s in columns.items()])
        if p.empty == "null":
            out = out.with_columns([
                pl.when(pl.col(n) == "").then(pl.lit(None, pl.Utf8)).otherwise(pl.col(n)).alias(n) for n in columns
            ])
        first = p.columns[0]
        lengths = out[first].str.len_chars()
        reason = pl.lit(None, pl.Utf8)
        if p.empty == "drop":
            reason = pl.when(pl.col(first).fill_null("") == "").then(pl.lit("empty_text")).otherwise(reason)
        if p.min_length > 0:
            too_short = (lengths.fill_null(0) < p.min_length)
            reason = pl.when(pl.Series(too_short)).then(pl.lit("text_too_short")).otherwise(reason)
        if too_nested:
            reason = pl.when(nested_rows).then(pl.lit(TOO_NESTED)).otherwise(reason)
        if p.empty == "drop" or p.min_length > 0 or too_nested:
            out = out.with_columns(reason.alias(DROP_REASON))
        return out
