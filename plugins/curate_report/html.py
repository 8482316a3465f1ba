"""Small HTML builders. Text is escaped unless it is already ``Html`` (markupsafe's idea, in 40 lines):
alt-texts are web data, and ``<script>`` in an alt-text must stay text in the report."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import Any

from curate.display import visible

VOID = {"img", "br", "hr", "meta", "col", "wbr"}


class Html(str):
    """A string that is already safe markup."""


def esc(value: Any) -> Html:
    """Text as HTML; its control characters and bidi overrides shown as escapes (``\\u202e``), so web
    text cannot reverse or hide what the page says (:func:`curate.display.visible`)."""
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else visible(value, lines=True), quote=True))


def join(parts: Iterable[Any], separator: str = "") -> Html:
    return Html(separator.join(esc(p) for p in parts))


def tag(name: str, content: Any = "", **attributes: Any) -> Html:
    """``tag("td", 3, class_="num")`` → ``<td class="num">3</td>``; ``None`` attributes are left out."""
    attrs = "".join(
        f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"' for key, value in attributes.items() if value is not None
    )
    if name in VOID:
        return Html(f"<{name}{attrs}>")
    return Html(f"<{name}{attrs}>{esc(content)}</{name}>")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Iterable[int] = (),
          class_: str | None = None) -> Html:
    """A table; columns whose index is in ``numeric`` are right-aligned with tabular figures."""
    right = set(numeric)
    head = join(tag("th", h, class_="num" if i in right else None) for i, h in enumerate(headers))
    body = join(
        tag("tr", join(tag("td", cell, class_="num" if i in right else None) for i, cell in enumerate(row)))
        for row in rows
    )
    return Html(f'<div class="table-wrap"><table class="{esc(class_ or "")}"><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table></div>")


def badge(text: Any, color: str | None = None, title: str | None = None) -> Html:
    style = f"--badge: {color}" if color else None
    return tag("span", text, class_="badge", style=style, title=title)


def number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def percent(part: float | None, whole: float | None) -> str:
    if part is None or not whole:
        return "–"
    return f"{100 * part / whole:.1f}%"


def slug(text: str, taken: set[str]) -> str:
    """An id for a section anchor, unique within the page."""
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    taken.add(candidate)
    return candidate


def thumb(uri: str | None, alt: Any) -> Html:
    """A thumbnail from a data URI, or a same-sized placeholder when the image is not available."""
    if uri is None:
        return Html('<div class="thumb missing" title="image not available">no image</div>')
    return tag("img", class_="thumb", src=uri, alt=alt)


_WORD = re.compile(r"\S+")  # what str.split() splits out


def clip_text(text: Any, limit: int = 140) -> str:
    """``text`` with its whitespace collapsed, cut to ``limit`` characters with an ellipsis. Only
    the words that show are read: splitting all of a 100 MB alt-text held 50 million strings."""
    words: list[str] = []
    length = -1
    for match in _WORD.finditer("" if text is None else str(text)):
        words.append(match.group())
        length += 1 + len(words[-1])
        if length > limit:
            break
    value = " ".join(words)
    return value if len(value) <= limit else value[: limit - 1] + "…"
