"""``curate clip`` prints the text it was given and its errors with control characters and bidi
overrides as escapes; a tab or newline in the text adds no column or line to ``edits``' output."""

from __future__ import annotations

from tests.core.test_cli_hostile_text import LINK, assert_shown_not_run

HOSTILE = f"\x1b[2J\r\u202e{LINK}\tx\nz"  # not "y": the world glossary reads Spanish "y" as "and"
SHOWN = f"\\x1b[2J\\x0d\\u202e{LINK}\\x09x\\x0az"


def test_edits_shows_the_text_with_escapes_one_edit_a_line(capsys):
    from curate.cli import main

    code = main(["clip", "edits", f"Two red discs {HOSTILE}", "--limit", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines() == [f"read as\tTwo red circles {SHOWN}", f"count\tA red circle {SHOWN}",
                                f"count\tThree red circles {SHOWN}"]
    assert_shown_not_run(out)


def test_an_unknown_vocabulary_is_an_error_with_escapes(capsys):
    from curate.cli import main

    code = main(["clip", "edits", "x", "--vocabulary", HOSTILE])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    # An error message may run over lines (as curate's own errors do): its tab and newline stay.
    assert f"Error: unknown vocabulary '\\x1b[2J\\x0d\\u202e{LINK}\tx\nz'; known: world" in err
    assert_shown_not_run(err)
