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
from typing import Any

# C0 and C1 controls, DEL, and the bidi embeddings, overrides and isolates (not the marks, which
# right-to-left text uses and which cannot reorder what surrounds them).
_UNSAFE_IN_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_IN_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # keeps \t and \n


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: Any, *, lines: bool = False) -> str:
    """``text`` with every control character written as an escape; ``lines``: keep newlines and
    tabs (a message of several lines)."""
    return (_UNSAFE_IN_LINES if lines else _UNSAFE_IN_LINE).sub(_escaped, str(text))


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


class VisibleFormatter(logging.Formatter):
    """Log messages quote URLs, paths and what a client or server sent: their control characters
    are shown, not run (the traceback of ``exc_info`` included)."""

    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record), lines=True)
