"""The images an untrusted experiment's eval sets list (``curate experiment validate|run
--untrusted``): a table's image paths and an imagefolder's files must be regular files inside the
working directory, links resolved, checked before any image is opened; trusted, as before."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.train.test_evalsets import RGB, cli
from tests.train.test_experiment_untrusted import outside, pool, refused_only_untrusted, validate  # noqa: F401
from tests.train.test_spec_experiment import COLORS, experiment

FIX = "copy the images into the working directory"


def table(pool: Path, paths: list[str], name: str = "theirs.parquet") -> Path:
    """An eval table in the working directory listing ``paths`` (one colour each)."""
    labels = [COLORS[i % len(COLORS)] for i in range(len(paths))]
    pl.DataFrame({"path": paths, "label": labels}).write_parquet(pool / name)
    return experiment(pool, eval=[{"name": "colors", "format": "table", "path": name,
                                   "templates": ["a {} square"]}])


def folder(pool: Path) -> Path:
    """An imagefolder in the working directory (folder/<colour>/0.png) and an experiment on it."""
    for color in COLORS:
        (pool / "folder" / color).mkdir(parents=True)
        Image.new("RGB", (16, 16), RGB[color]).save(pool / "folder" / color / "0.png")
    return experiment(pool, eval=[{"name": "shapes", "format": "imagefolder", "path": "folder",
                                   "templates": ["a {} square"]}])


def test_a_table_naming_an_absolute_path_outside_is_refused(pool, outside, capsys):
    image = str(outside / "eval" / "0.png")
    path = table(pool, ["eval/0.png", image, "eval/2.png"])
    refused_only_untrusted(path, capsys, f"eval set 'colors': {pool / 'theirs.parquet'} row 1: image '{image}'",
                           "is outside the working directory", "the experiment is untrusted (--untrusted)", FIX,
                           "or run the experiment without --untrusted if you trust it")


def test_a_table_naming_a_relative_path_out_by_dotdot_is_refused(pool, outside, capsys):
    raw = os.path.relpath(outside / "eval" / "0.png", pool)  # ../private/eval/0.png, from the table's folder
    path = table(pool, [raw])
    refused_only_untrusted(path, capsys, f"{pool / 'theirs.parquet'} row 0: image '{raw}'",
                           f"leads to {(outside / 'eval' / '0.png').resolve()}, outside the working directory", FIX)


def test_a_table_naming_a_link_inside_that_leads_out_is_refused(pool, outside, capsys):
    (pool / "eval" / "link.png").symlink_to(outside / "eval" / "0.png")
    path = table(pool, ["eval/0.png", "eval/link.png"])
    refused_only_untrusted(path, capsys, f"row 1: image 'eval/link.png' is a link leading out of the working "
                           f"directory, to {(outside / 'eval' / '0.png').resolve()}", FIX)


def test_a_table_naming_a_pipe_is_refused_and_the_other_bad_rows_counted(pool, outside, capsys):
    os.mkfifo(pool / "eval" / "pipe.png")
    path = table(pool, ["eval/pipe.png", "eval/0.png", "/etc/passwd", "eval/missing.png"])
    refused_only_untrusted(path, capsys, "row 0: image 'eval/pipe.png' is a pipe (FIFO), not a file",
                                 "2 other rows are refused too")


def test_a_pipe_in_an_imagefolder_class_folder_is_refused(pool, capsys):
    path = folder(pool)
    os.mkfifo(pool / "folder" / "red" / "1.png")
    refused_only_untrusted(path, capsys, f"eval set 'shapes': imagefolder {pool / 'folder'}: image 'red/1.png' is "
                           "a pipe (FIFO), not a file", FIX)


def test_an_imagefolder_image_that_is_a_link_out_is_refused(pool, outside, capsys):
    path = folder(pool)
    (pool / "folder" / "red" / "1.png").symlink_to(outside / "eval" / "0.png")
    refused_only_untrusted(path, capsys, "image 'red/1.png' is a link leading out of the working directory")


def test_an_imagefolder_class_folder_that_is_a_link_out_is_refused_unlisted(pool, outside, capsys):
    path = folder(pool)
    (pool / "folder" / "white").symlink_to(outside / "eval", target_is_directory=True)
    refused_only_untrusted(path, capsys, f"imagefolder {pool / 'folder'}: class folder 'white' is a link leading "
                           f"out of the working directory, to {(outside / 'eval').resolve()}", FIX)


def test_clean_eval_sets_inside_the_working_directory_validate_untrusted(pool, capsys):
    (pool / "eval" / "alias.png").symlink_to(pool / "eval" / "0.png")  # a link that stays inside
    (pool / "inner").mkdir()
    pl.DataFrame({"path": ["../eval/1.png", str(pool / "eval" / "2.png"), "../eval/alias.png"],
                  "label": COLORS[:3]}).write_parquet(pool / "inner" / "table.parquet")
    folder(pool)
    evals = [{"name": "colors", "format": "table", "path": "inner/table.parquet", "groups": {"warm": ["red"]}},
             {"name": "shapes", "format": "imagefolder", "path": "folder"}]
    code, out, err = validate(experiment(pool, eval=evals), capsys, "--untrusted")
    assert code == 0, err
    assert "ok all:" in out


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["..", "eval", "x", "0.png"]), min_size=1, max_size=6))
def test_an_image_path_without_links_is_refused_exactly_when_it_lands_outside_or_is_no_file(tmp_path_factory, parts):
    """Without links, where a written path lands decides: inside the working directory and a
    regular file, or refused (outside, or no such file), never an exception."""
    from curate_train.untrusted import image_problem

    work = tmp_path_factory.mktemp("work") / "a" / "b"
    (work / "eval").mkdir(parents=True)
    (work / "eval" / "0.png").write_bytes(b"png")
    (work / "0.png").write_bytes(b"png")
    raw = "/".join(parts)
    lands = Path(os.path.normpath(work / "eval" / raw))  # relative to the table's folder, work/eval
    problem = image_problem(work / "eval" / raw, raw, (work.resolve(),))
    if not lands.is_relative_to(work):
        assert problem is not None and "outside the working directory" in problem
    else:
        assert (problem is None) == (work / "eval" / raw).is_file(), problem  # as the system opens it


def test_run_untrusted_refuses_an_image_outside_before_it_curates_or_trains(pool, outside, capsys):
    path = table(pool, [str(outside / "eval" / "0.png")])
    code, _, err = cli(["experiment", "run", path, "--run-dir", "run", "--untrusted"], capsys)
    assert code == 2, err
    assert "row 0: image" in err and "outside the working directory" in err, err
    assert "Traceback" not in err
    assert not (pool / "run").exists()


def test_rows_read_untrusted_refuse_an_image_swapped_for_a_link_out_after_the_check(pool, outside):
    """Where rows are read at evaluation, the image opened is the checked one: a link put in its
    place since is refused, not followed."""
    pytest.importorskip("torch")
    from curate.errors import UsageError
    from curate_train.evalsets import load_images, make_eval_set, read_rows

    table(pool, ["eval/0.png", "eval/1.png"])
    evalset = make_eval_set({"format": "table", "path": "theirs.parquet"}, "eval[0]", base=pool)
    rows = read_rows(evalset, untrusted=True)
    assert load_images(rows, lambda image: _tensor(image), [0, 1]).shape[0] == 2
    (pool / "eval" / "1.png").unlink()
    (pool / "eval" / "1.png").symlink_to(outside / "eval" / "1.png")
    with pytest.raises(UsageError, match="a link leading out of the working directory"):
        load_images(rows, lambda image: _tensor(image), [1])
    trusted = read_rows(evalset)
    assert load_images(trusted, lambda image: _tensor(image), [1]).shape[0] == 1  # the user's own: as before


def _tensor(image):
    import torch

    import numpy as np

    return torch.from_numpy(np.asarray(image, dtype=np.float32))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # open_clip_train and webdataset warn about CPU runs and leaked handles
def test_run_untrusted_of_a_clean_experiment_evaluates_its_images_as_a_trusted_run(pool, capsys):
    """The images are read through the untrusted path (checked, opened at their real paths) and
    score exactly as the user's own run scores them."""
    import json

    path = experiment(pool, seeds=[0], variants=[{"name": "all"}])
    accuracy = {}
    for run_dir, options in (("trusted", []), ("untrusted", ["--untrusted"])):
        code, _, err = cli(["experiment", "run", path, "--run-dir", run_dir, *options], capsys)
        assert code == 0, err[-3000:]
        accuracy[run_dir] = json.loads((pool / run_dir / "seed-0" / "all" / "result.json").read_text())["colors.acc1"]
    assert accuracy["untrusted"] == accuracy["trusted"]
