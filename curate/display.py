"""Text from specs, data and run directories, made safe to show: on a terminal, in the report.

Step labels and spec names are checked when a spec loads; drop reasons, column names, output
paths, URLs in error messages and everything in another person's run directory are anyone's
text. Printed as they are, an ESC sequence clears the screen or recolours what follows, an OSC 8
sequence hides a hyperlink, a carriage return overwrites the start of the line, and a bidi
override shows text reversed (in a terminal and in a web page alike); rich, besides, reads
``[link=…]`` or ``[bold]`` in a string as markup. :func:`visible` writes those characters as
escapes (``\\x1b``), the way ``repr`` would; :func:`for_rich` also escapes markup. Text without
them is returned unchanged.

Commands that print plain lines (plugins' commands, which print with click rather than rich) use
:func:`echo`; a log handler a command installs uses :class:`VisibleFormatter`.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

# C0 and C1 controls, DEL, the bidi embeddings, overrides and isolates (not the marks, which
# right-to-left text uses and which cannot reorder what surrounds them), the line and paragraph
# separators (a line break to some terminals and pages, none to others), and the invisible
# characters that carry no meaning in text: zero-width space, word joiner, invisible operators,
# deprecated format characters, interlinear annotations, a byte order mark, and the tag
# characters (invisible copies of ASCII: hidden text) outside the three emoji tag sequences
# Unicode recommends (UTS #51: 🏴 + "gbeng", "gbsct" or "gbwls" + cancel tag, the flags of
# England, Scotland and Wales; any other subdivision code would let hidden letters through a
# flag). The joiners (ZWJ, ZWNJ) stay: emoji sequences and Persian and Indic words need them.
# ``normalize_text`` removes what this escapes (curate_basics.invisible).
FLAG_TAG_SEQUENCE = (r"\U0001f3f4\U000e0067\U000e0062(?:\U000e0065\U000e006e\U000e0067|"
                     r"\U000e0073\U000e0063\U000e0074|\U000e0077\U000e006c\U000e0073)\U000e007f")
_HIDING = (r"\u202a-\u202e\u2066-\u2069\u200b\u2028\u2029\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb"
           r"\U000e0000-\U000e007f")
_UNSAFE_IN_LINE = re.compile(f"({FLAG_TAG_SEQUENCE})|[\\x00-\\x1f\\x7f-\\x9f{_HIDING}]")
_UNSAFE_IN_LINES = re.compile(f"({FLAG_TAG_SEQUENCE})|[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_HIDING}]")  # keeps \t, \n


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _escaped(match: re.Match[str]) -> str:
    return match.group(1) or _escape(ord(match.group()))


def visible(text: Any, *, lines: bool = False) -> str:
    """``text`` with every control character written as an escape; ``lines``: keep newlines and
    tabs (a message of several lines)."""
    return (_UNSAFE_IN_LINES if lines else _UNSAFE_IN_LINE).sub(_escaped, str(text))


def visible_name(name: Any) -> str:
    """A name (a column, a key) as a message quotes it: :func:`visible`, and also every character
    that does not show or shows as a plain space (format characters such as ZWJ and the
    direction marks, no-break and other spaces, the soft hyphen) written as an escape. A column
    ``alt_text`` + U+200B quoted raw reads ``'alt_text'``: the user cannot see what to type."""
    return "".join(ch if ch == " " or unicodedata.category(ch) not in _HIDDEN_CATEGORIES else _escape(ord(ch))
                   for ch in visible(name))


def hidden_characters(name: Any) -> list[str]:
    """``U+200B ZERO WIDTH SPACE`` for each distinct character of ``name`` that
    :func:`visible_name` escapes, in order of first appearance."""
    found = dict.fromkeys(ch for ch in str(name) if visible_name(ch) != ch)
    return [f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed')}" for ch in found]


_HIDDEN_CATEGORIES = {"Cf", "Zs", "Zl", "Zp", "Cc", "Cs", "Co", "Cn"}


# rich.markup.escape's pattern, tried only where a run of backslashes starts: rich's own search
# tries every backslash of a run, each try reading to the run's end: 100 000 backslashes in a
# cell took 20 s, a million half an hour. The leftmost match never starts after a backslash (the match one
# character earlier is longer), so the matches are rich's.
_MARKUP = re.compile(r"(?<!\\)(\\*)(\[[a-z#/@][^[]*?])")


def _escape_markup(match: re.Match[str]) -> str:
    backslashes, markup = match.groups()
    return f"{backslashes}{backslashes}\\{markup}"


def for_rich(text: Any) -> str:
    """``text`` to put in a string rich prints (``console.print``, a table cell, a title): visible,
    and its ``[`` not read as markup (what ``rich.markup.escape`` does, in linear time)."""
    escaped = _MARKUP.sub(_escape_markup, visible(text))
    if escaped.endswith("\\") and not escaped.endswith("\\\\"):
        return escaped + "\\"  # a last backslash would escape the markup that follows the text
    return escaped


def echo(text: Any = "", *, err: bool = False, lines: bool = False) -> None:
    """``click.echo`` of ``text`` made :func:`visible`: a line quoting a path, a spec value, a data
    cell, a file's contents or a server's answer, on stdout (stderr with ``err``). ``lines``: text
    of several lines (indented JSON, a Markdown table) keeps its newlines and tabs; a line quoting
    a value escapes them too, so a value cannot start a line that looks like the command's own."""
    import click

    click.echo(visible(text, lines=lines), err=err)


def rich_console(stderr: bool = False) -> Any:
    """The rich console curate prints with (on stderr with ``stderr``). Text from specs, data or a
    run directory goes through :func:`for_rich` first; ``:name:`` is never an emoji code."""
    from rich.console import Console

    from curate.closedpipe import StdoutConsole

    # a reader closing stdout early is no failure (curate.closedpipe)
    kind = Console if stderr else StdoutConsole
    return kind(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)


class VisibleFormatter(logging.Formatter):
    """Log messages quote URLs, paths and what a client or server sent: their control characters
    are shown, not run (the traceback of ``exc_info`` included)."""

    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record), lines=True)
