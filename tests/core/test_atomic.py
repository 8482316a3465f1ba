"""curate.atomic: a file is replaced whole or left as it was."""

import os

import pytest

from curate.atomic import atomic_path, temporary, write_text_atomic


def test_success_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.json"
    write_text_atomic(target, "old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert not temporary(target).exists()


def test_sweep_removes_temporaries_of_dead_processes_only(tmp_path):
    target = tmp_path / "out.txt"
    dead = tmp_path / f".out.txt.{2**22 + 12345}.tmp"  # above pid_max: no such process
    alive = tmp_path / f".out.txt.{os.getppid()}.tmp"
    dead.write_text("x")
    alive.write_text("x")
    with atomic_path(target, sweep=True) as tmp:
        tmp.write_text("done")
    assert not dead.exists() and alive.exists()
    assert target.read_text() == "done"


def test_keep_same_leaves_a_file_with_the_same_bytes_untouched_and_replaces_others(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("same")
    os.utime(target, ns=(10**9, 10**9))
    write_text_atomic(target, "same", keep_same=True)
    assert target.stat().st_mtime_ns == 10**9 and not temporary(target).exists()
    write_text_atomic(target, "sane", keep_same=True)  # same size, other bytes
    assert target.read_text() == "sane" and target.stat().st_mtime_ns != 10**9
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    write_text_atomic(link, "sane", keep_same=True)  # a link is replaced by a file, as before
    assert not link.is_symlink() and link.read_text() == "sane"
