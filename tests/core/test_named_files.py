"""Files a spec names (a step's list, eval set, model folder): what is there instead of a file, in
curate's words, and which of them a spec run with --untrusted may read."""

from __future__ import annotations

import os

import pytest

from curate.runfiles import not_regular, outside_working_directory, real_paths, where_outside
from curate.safetensors_header import NotSafetensors, read_header

from tests.core.test_run_dir_safety import no_endless_wait


def test_not_regular_says_what_is_there(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    assert not_regular(tmp_path / "file") is None
    assert not_regular(tmp_path / "folder") == "is a folder, not a file"
    assert not_regular(tmp_path / "pipe") == "is a pipe (FIFO), not a file"
    assert not_regular(tmp_path / "zero") == "is a character device (a link to /dev/zero), not a file"
    assert not_regular(tmp_path / "broken").startswith("is a broken link")
    assert not_regular(tmp_path / "nowhere") == "does not exist"


def test_real_paths_are_what_realpath_says_of_each(tmp_path, monkeypatch):
    """Each folder is resolved once and a file that is no link joined to it: links to a file, to a
    folder, to nothing and in a loop, relative paths and '..' resolve as os.path.realpath does."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.parquet").write_text("x")
    (tmp_path / "data" / "to_a.parquet").symlink_to("a.parquet")
    (tmp_path / "linked").symlink_to(tmp_path / "data")
    (tmp_path / "data" / "broken.parquet").symlink_to(tmp_path / "nowhere")
    (tmp_path / "data" / "loop").symlink_to("loop")
    paths = ["data/a.parquet", "data/to_a.parquet", "linked/a.parquet", "linked/to_a.parquet",
             str(tmp_path / "linked" / "b.parquet"), "data/broken.parquet", "data/loop",
             "data/../linked/a.parquet", "a.parquet", "data/", "linked/.", "linked/..", "/",
             tmp_path / "data" / "a.parquet"]
    assert real_paths(paths) == [os.path.realpath(p) for p in paths]
    assert real_paths(["linked/to_a.parquet"]) == [str(tmp_path.resolve() / "data" / "a.parquet")]


def test_an_untrusted_spec_names_files_inside_the_working_directory_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inside.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "passwd").symlink_to("/etc/passwd")
    assert outside_working_directory("inside.txt") is None
    assert outside_working_directory("sub/../inside.txt") is not None  # '..' is refused as the spec says it
    for raw, says in [("/etc/passwd", "outside the working directory"), ("~/.ssh/id_rsa", "outside"),
                      ("../x", "written with '..'"), ("passwd", "a link to /etc/passwd")]:
        problem = outside_working_directory(raw)
        assert problem is not None and says in problem and "--untrusted" in problem, raw


def test_where_outside_resolves_relative_paths_from_their_base_and_allows_absolute_ones_inside(tmp_path, monkeypatch):
    """A world's dir is relative to the spec's folder and an export's store_dir to the run
    directory: one inside a folder outside the working directory lies outside too. An absolute
    path inside it is fine (a run's saved spec may have those)."""
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert where_outside("w", base=tmp_path) == f"{tmp_path / 'w'}, outside the working directory"
    assert where_outside("w", base=tmp_path / "work") is None
    assert where_outside(str(tmp_path / "work" / "w")) is None
    assert where_outside("w", base=tmp_path, also=[tmp_path]) is None  # the run directory, for a sink
    assert outside_working_directory(str(tmp_path / "work" / "w")) is None


@pytest.mark.parametrize("make, says", [
    (os.mkfifo, "is a pipe (FIFO), not a safetensors file"),
    (lambda p: p.symlink_to("/dev/zero"), "is a character device, not a safetensors file"),
])
def test_a_safetensors_header_is_read_from_a_regular_file_only(tmp_path, make, says):
    """Callers check first, but the header reader is the last guard: a pipe waited forever."""
    make(tmp_path / "model.safetensors")
    with no_endless_wait(10), pytest.raises(NotSafetensors, match=says.replace("(", r"\(").replace(")", r"\)")):
        read_header(tmp_path / "model.safetensors")



@pytest.mark.parametrize("where", ["absolute", "dotdot", "home", "link", "spec_elsewhere"])
def test_an_untrusted_specs_source_reads_only_inside_the_working_directory(curate_main, workdir, tmp_path, where):
    """Its rows reach the outputs (and a download step could send them to a host the spec names):
    a source path that reaches out of the working directory is refused at validate, as its SQL
    reading a file is; trusted, the same spec validates, and so does one reading a file inside."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    table = "url,alt_text\nhttp://a/1.jpg,the user's secret\n"
    (elsewhere / "secret.csv").write_text(table)
    (workdir / "ok.csv").write_text(table)
    (workdir / "link.csv").symlink_to(elsewhere / "secret.csv")
    path = {"absolute": str(elsewhere / "secret.csv"), "dotdot": "../elsewhere/secret.csv", "home": "~/secret.csv",
            "link": "link.csv", "spec_elsewhere": "secret.csv"}[where]
    spec_dir = elsewhere if where == "spec_elsewhere" else workdir
    text = f"source: {{format: csv, path: '{path}'}}\nsteps: []\noutputs: [{{format: parquet, path: o.parquet}}]\n"
    (spec_dir / "spec.yaml").write_text(text)
    refused = curate_main("validate", str(spec_dir / "spec.yaml"), "--untrusted")
    assert refused.code == 2, refused
    assert "source" in refused.stderr
    assert ("written with '..'" if where == "dotdot" else "outside the working directory") in refused.stderr
    assert "--untrusted" in refused.stderr  # and how to go on
    if where != "home":  # no such file in this home
        assert curate_main("validate", str(spec_dir / "spec.yaml")).code == 0
    (workdir / "spec.yaml").write_text(text.replace(f"'{path}'", "ok.csv"))
    assert curate_main("validate", "spec.yaml", "--untrusted").code == 0
    (workdir / "spec.yaml").write_text(text.replace(f"'{path}'", f"'{workdir / 'ok.csv'}'"))
    assert curate_main("validate", "spec.yaml", "--untrusted").code == 0  # absolute, but inside
