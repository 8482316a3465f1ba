"""``curate captioner`` shows file names, captions and column names with their control characters
and bidi overrides as escapes; ``caption``'s two columns stay two columns whatever a name holds."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from tests.captioner.conftest import images
from tests.core.test_cli_hostile_text import LINK, assert_shown_not_run

NAME = "p\x1b[2J\r\u202e\tq\n[bold].png"  # a file name holds no '/', so no [link=...] in it
SHOWN = "p\\x1b[2J\\x0d\\u202e\\x09q\\x0a[bold].png"


def test_caption_shows_each_image_path_with_escapes(saved_captioner: Path, tmp_path: Path, capsys) -> None:
    from curate.cli import main

    picture = tmp_path / NAME
    images(1)[0].save(picture, format="PNG")
    code = main(["captioner", "caption", str(picture), "--model", str(saved_captioner)])
    out, err = capsys.readouterr()
    assert code == 0, err
    [line] = out.splitlines()
    path, caption = line.split("\t")
    assert path == f"{tmp_path}/{SHOWN}"
    assert_shown_not_run(out)


def test_a_table_without_the_columns_is_an_error_naming_them_with_escapes(tmp_path: Path, capsys) -> None:
    from curate.cli import main

    column = f"\x1b[2J\r\u202e{LINK}"
    pl.DataFrame({column: ["x"]}).write_parquet(tmp_path / "t.parquet")
    code = main(["captioner", "train", "--stage", "1", "--out", str(tmp_path / "out"), "--table",
                 str(tmp_path / "t.parquet"), "--image-column", column, "--threads", "1"])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert "has no column(s) ['alt_text']" in err and f"columns: \\x1b[2J\\x0d\\u202e{LINK}" in err
    assert_shown_not_run(err)


def test_training_logs_its_output_folder_with_escapes(saved_captioner: Path, tmp_path: Path, capsys) -> None:
    from curate.cli import main

    paths = []
    for index, picture in enumerate(images(2)):
        paths.append(str(tmp_path / f"{index}.png"))
        picture.save(paths[-1])
    pl.DataFrame({"image": paths, "alt_text": ["a red square", "a blue circle"],
                  "caption": ["A red square.", "A blue circle."]}).write_parquet(tmp_path / "t.parquet")
    out_dir = tmp_path / NAME.removesuffix(".png")
    code = main(["captioner", "train", "--stage", "2", "--init", str(saved_captioner), "--out", str(out_dir),
                 "--table", str(tmp_path / "t.parquet"), "--steps", "1", "--batch-size", "2", "--threads", "1",
                 "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"captioner saved to {tmp_path}/{SHOWN.removesuffix('.png')}\n" in err
    assert_shown_not_run(out + err)
