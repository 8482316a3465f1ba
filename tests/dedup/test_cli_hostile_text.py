"""``curate dedup train-copy-world`` prints only numbers; what it is given comes back in its errors,
through curate's error printing: control characters and bidi overrides as escapes, and a wrong
``--init`` is the user's to fix (exit 2), not an internal error to report."""

from __future__ import annotations

from pathlib import Path

from tests.core.test_cli_hostile_text import assert_shown_not_run

NAME = "m\x1b[2J\r\u202e[bold]"
SHOWN = "m\\x1b[2J\\x0d\\u202e[bold]"


def test_an_init_that_is_no_model_directory_is_a_usage_error_with_escapes(tmp_path: Path, capsys) -> None:
    from curate.cli import main

    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / "config.json").write_text("{}")  # no weights beside it
    for init in (tmp_path / NAME, tmp_path / "missing"):
        code = main(["dedup", "train-copy-world", "--out", str(tmp_path / "out"), "--steps", "1", "--init", str(init)])
        out, err = capsys.readouterr()
        assert code == 2 and out == "", err
        shown = str(init).replace(NAME, SHOWN)
        assert f"error: --init {shown} is no copy model directory (it needs config.json and model.safetensors)" in err
        assert "internal error" not in err and not (tmp_path / "out").exists()
        assert_shown_not_run(err)
