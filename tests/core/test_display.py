"""curate.display's printing helpers: :func:`echo`, the one way a command prints a plain line that
quotes a path, a spec value, a data cell or a server's text, and :class:`VisibleFormatter` for log
records. Whatever the text, nothing that reaches the terminal is a control character or a bidi
override; text without them is printed exactly as before."""

from __future__ import annotations

import logging
import re
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from curate.display import FLAG_TAG_SEQUENCE, VisibleFormatter, echo, hidden_characters, visible, visible_name

HOSTILE = "a\x1b[2Jb\rc\u202ed [link=http://x]y[/link]\x9b\x00"
UNSAFE = {*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0)), *map(chr, range(0x202A, 0x202F)),
          *map(chr, range(0x2066, 0x206A)),
          # invisible, no meaning in text: zero-width space, line/paragraph separators, word joiner and
          # invisible operators, deprecated format characters, byte order mark, interlinear annotations
          "\u200b", "\u2028", "\u2029", *map(chr, range(0x2060, 0x2065)), *map(chr, range(0x206A, 0x2070)),
          "\ufeff", *map(chr, range(0xFFF9, 0xFFFC))}
TAGS = set(map(chr, range(0xE0000, 0xE0080)))
FLAG_SEQUENCE = re.compile(FLAG_TAG_SEQUENCE)
# text as the web writes it: joiners, marks, flags, tags, spaces of every kind
unicode_text = st.text(st.one_of(st.characters(), st.sampled_from(sorted(UNSAFE | TAGS | {
    "\U0001f3f4", "\u200d", "\u200c", "\u200e", "\u00a0", "\u00ad", "\U000e007f"}))))


def test_echo_writes_control_characters_as_escapes_on_stdout_or_stderr(capsys):
    echo(HOSTILE)
    echo(HOSTILE, err=True)
    out, err = capsys.readouterr()
    shown = "a\\x1b[2Jb\\x0dc\\u202ed [link=http://x]y[/link]\\x9b\\x00\n"
    assert out == shown and err == shown  # rich markup is no concern of a plain line: shown as written


def test_echo_of_several_lines_keeps_newlines_and_tabs_only_when_asked(capsys):
    echo("{\n\t\"a\": \"x\x1b\"\n}", lines=True)
    echo("one\nline\tonly")
    assert capsys.readouterr().out == "{\n\t\"a\": \"x\\x1b\"\n}\none\\x0aline\\x09only\n"


@given(unicode_text, st.booleans())
def test_echo_prints_visible_text_and_nothing_unsafe(text, lines):
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        echo(text, lines=lines)
    printed = buffer.getvalue()
    assert printed == visible(text, lines=lines) + "\n"
    assert not set(printed[:-1]) & (UNSAFE - ({"\n", "\t"} if lines else set()))
    assert not set(FLAG_SEQUENCE.sub("", printed)) & TAGS  # tags only as an emoji flag's sequence
    if not set(text) & (UNSAFE | TAGS):
        assert printed == text + "\n"


def test_invisible_characters_are_escaped_and_joiners_and_flags_kept():
    family, scotland = "👨\u200d👩\u200d👧", "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
    persian = "می\u200cخواهم"
    assert visible(f"{family} {scotland} {persian}") == f"{family} {scotland} {persian}"
    assert visible("a\u200bb\u2028c\ufeff") == "a\\u200bb\\u2028c\\ufeff"
    assert visible("x\U000e0041\U000e0042") == "x\\U000e0041\\U000e0042"  # hidden text, shown
    assert visible("🏴\U000e0041") == "🏴\\U000e0041"  # no cancel tag: not a flag
    ignore = "🏴" + "".join(chr(0xE0000 + ord(c)) for c in "ignore") + "\U000e007f"  # flag-shaped, hidden text
    assert visible(ignore) == "🏴" + "".join(f"\\U{0xE0000 + ord(c):08x}" for c in "ignore") + "\\U000e007f"


@given(unicode_text)
def test_a_name_shows_every_character_that_does_not_show(name):
    shown = visible_name(name)
    assert all(ch == " " or unicodedata.category(ch) not in {"Cf", "Zs", "Zl", "Zp", "Cc"} for ch in shown)
    if all(ch == " " or unicodedata.category(ch) not in {"Cf", "Zs", "Zl", "Zp", "Cc", "Cs", "Co", "Cn"}
           for ch in name):
        assert shown == name and hidden_characters(name) == []


def test_a_name_with_a_zero_width_space_or_a_no_break_space_is_told_apart():
    assert visible_name("alt_text\u200b") == "alt_text\\u200b"
    assert visible_name("alt_text\u00a0") == "alt_text\\xa0"
    assert hidden_characters("a\u200bb\u200b\u00a0") == ["U+200B ZERO WIDTH SPACE", "U+00A0 NO-BREAK SPACE"]


def test_visible_formatter_escapes_the_message_and_the_traceback():
    formatter = VisibleFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("bad\x1b]8;;http://evil\x07")
    except ValueError:
        import sys

        record = logging.LogRecord("t", logging.INFO, __file__, 1, "GET %s", ("/\x1b[2J\r\u202e",), sys.exc_info())
    shown = formatter.format(record)
    assert shown.startswith("INFO GET /\\x1b[2J\\x0d\\u202e\n")
    assert "ValueError: bad\\x1b]8;;http://evil\\x07" in shown
    assert not set(shown) & (UNSAFE - {"\n"})


@given(st.text(alphabet=st.sampled_from("\\[]a#/@Z x\x1b"), max_size=40))
def test_for_rich_escapes_as_rich_does(text):
    from rich.markup import escape

    from curate.display import for_rich

    assert for_rich(text) == escape(visible(text))


def test_for_rich_of_a_backslash_flood_finishes():
    """rich's escape tries each backslash of a run, reading to the run's end: 300 000 took minutes."""
    from tests.bounded import finishes

    finishes("""
        from curate.display import for_rich
        n = 300_000
        assert for_rich("\\\\" * n + "x") == "\\\\" * n + "x"
        assert for_rich("\\\\" * n + "[b]") == "\\\\" * (2 * n + 1) + "[b]"
    """)


def test_the_funnel_shows_each_drop_reason_on_its_own_line():
    """The reasons were joined, then made visible, so their newlines showed as \\x0a (Ray probe);
    a reason's own control characters are still escaped."""
    import io

    from rich.console import Console

    from curate.commands.funnel import _print_funnel

    manifest = {"name": "n", "status": "complete", "steps": [
        {"index": 1, "label": "download", "step": "download", "rows_in": 10, "rows_out": 5, "seconds": 1.0,
         "cached": False, "complete": True,
         "dropped": {"download: failed_to_load": 3, "download: bad\x1bone": 2}}]}
    out = io.StringIO()
    _print_funnel(manifest, Console(file=out, width=200))
    shown = out.getvalue()
    assert "\\x0a" not in shown and "download: failed_to_load: 3" in shown and "bad\\x1bone: 2" in shown
