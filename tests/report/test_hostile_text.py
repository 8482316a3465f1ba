"""Web text in the report cannot hide or reverse what the page says: its control characters and
bidi overrides show as escapes, in alt-texts, captions and drop reasons alike."""

from __future__ import annotations

import polars as pl
from curate_report.page import write_report

from curate.testing import run_spec

ALT_TEXTS = ["a photo of a \u202eexe.cod\u202c cat", "a dog \x1b[2J hidden", "a calm lake at dusk",
             "two red circles"]


def test_control_characters_and_bidi_overrides_show_as_escapes(workdir, report_pm):
    table = pl.DataFrame({"url": [f"https://e.org/{i}" for i in range(4)], "alt_text": ALT_TEXTS})
    spec = {"name": "hostile", "source": {"path": "input.parquet"},
            "steps": [{"step": "filter", "params": {"where": "alt_text != 'two red circles'",
                                                     "reason": "kept\u202e dropped \x1b[8m"}},
                      {"step": "sql", "params": {"query": "SELECT *, alt_text AS caption, "
                                                          "'original' AS caption_source FROM input"}}],
            "run": {"report": False}}
    run_spec(spec, workdir, tables={"input.parquet": table}, pm=report_pm)
    page = write_report(workdir / "run", pm=report_pm).read_text(encoding="utf-8")
    for hidden in ("\u202e", "\u202c", "\x1b"):
        assert hidden not in page
    assert "a photo of a \\u202eexe.cod\\u202c cat" in page  # a card
    assert "kept\\u202e dropped \\x1b[8m" in page  # the funnel's drop reason
    assert "a calm lake at dusk" in page  # ordinary text as it was


def test_the_report_command_shows_the_page_path_with_escapes(workdir, report_pm, capsys):
    from curate.cli import main

    table = pl.DataFrame({"url": ["https://e.org/0", "https://e.org/1"], "alt_text": ALT_TEXTS[:2]})
    spec = {"name": "hostile", "source": {"path": "input.parquet"}, "steps": [], "run": {"report": False}}
    run_spec(spec, workdir, tables={"input.parquet": table}, pm=report_pm)
    code = main(["report", str(workdir / "run"), "--out", str(workdir / "page\x1b[2J\r\u202e[bold]x.html")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith(f"wrote {workdir}/page\\x1b[2J\\x0d\\u202e[bold]x.html (")
    for hidden in ("\u202e", "\x1b", "\r"):
        assert hidden not in out
