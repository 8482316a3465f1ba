"""What every report must be: well-formed HTML that needs nothing from the network."""

from __future__ import annotations

import re
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
URL_ATTRIBUTES = {"src", "href", "srcset", "poster", "data", "action", "formaction", "xlink:href"}


class Structure(HTMLParser):
    """Records nesting errors, ids, anchors and every URL-valued attribute."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.urls: list[tuple[str, str, str]] = []
        self.tags: dict[str, int] = {}
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            if name == "id":
                self.ids.append(value or "")
            if name in URL_ATTRIBUTES:
                self.urls.append((tag, name, value or ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
            if tag in self.stack:
                while self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()


def parse(page: str) -> Structure:
    parser = Structure()
    parser.feed(page)
    parser.close()
    return parser


def assert_well_formed(page: str) -> Structure:
    structure = parse(page)
    assert structure.doctype, "no <!DOCTYPE html>"
    assert not structure.errors, structure.errors[:5]
    assert not structure.stack, f"unclosed elements: {structure.stack}"
    assert structure.tags.get("html") == 1 and structure.tags.get("body") == 1
    assert len(structure.ids) == len(set(structure.ids)), "duplicate ids"
    for tag, name, value in structure.urls:
        if value.startswith("#"):
            assert value[1:] in structure.ids, f"<{tag} {name}={value!r}> points at no element"
    return structure


def assert_self_contained(page: str) -> None:
    """Every URL is a data URI or an in-page anchor; no external scripts, styles or fonts."""
    for tag, name, value in parse(page).urls:
        assert value.startswith(("data:", "#")), f"<{tag} {name}={value[:80]!r}> leaves the page"
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", page, re.IGNORECASE), "a stylesheet loads a URL"
    assert "@import" not in page
    assert "<script" not in page.lower(), "the report needs no script (and alt-texts must stay text)"
