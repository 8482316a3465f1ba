"""A store other users share, or holds files this user cannot delete: `--no-cache` / `--from` stop
with the folder named instead of reusing it, and the store's lock names its holder to every user.

Root ignores permissions, so these tests run as root and make a folder unremovable with
``chattr +i``, or run the other user's side as ``nobody`` in a subprocess; they are skipped
where neither is possible."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from curate.storeusers import REGISTRY
from tests.conftest import cli_env, sample_table

ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chattr, or running as another user)")
NOBODY = 65534
SPEC = {"name": "shared", "source": {"path": "data.parquet"},
        "steps": [{"step": "normalize_text"}, {"step": "exact_dedup", "params": {"columns": ["url"]}}],
        "outputs": [{"format": "parquet", "path": "out.parquet"}],
        "run": {"dir": "run", "shard_size": 10}}


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``path`` marked immutable (``chattr +i``): not even root may change or delete it."""
    try:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        pytest.skip("chattr is not installed")
    if done.returncode != 0:
        pytest.skip(f"chattr +i does not work here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def step_folders(run: Path) -> list[Path]:
    return sorted(p for p in (run / "store").iterdir() if p.is_dir() and p.name != REGISTRY)


def folder_of(run: Path, label: str) -> Path:
    return next((run / "steps").glob(f"*_{label}")).resolve()


@pytest.fixture
def finished(curate_main, write_spec, workdir) -> Path:
    write_spec(SPEC, table=sample_table(40))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    return workdir / "run"


@ROOT
@pytest.mark.parametrize("flags", [("--no-cache",), ("--from", "normalize_text")])
def test_a_step_folder_that_cannot_be_removed_stops_the_run_before_anything_is_removed(curate_main, finished, flags):
    folders = step_folders(finished)
    dedup = folder_of(finished, "exact_dedup")
    with immutable(dedup / "data"):  # its shards cannot be deleted
        result = curate_main("run", "spec.yaml", "--quiet", *flags)
    assert result.code == 2 and "internal error" not in result.stderr, result
    assert "cannot recompute step 'exact_dedup'" in result.stderr and f"{dedup / 'data'}" in result.stderr
    assert "marked immutable" in result.stderr and "Nothing was removed" in result.stderr
    assert "run.cache_dir" in result.stderr  # how to go on: a store of one's own
    assert all((p / "_COMPLETE.json").exists() for p in folders)  # every step still there, whole


@ROOT
def test_a_step_folder_that_fails_halfway_is_never_reused_and_its_file_is_named(curate_main, finished,
                                                                              workdir, monkeypatch):
    """Where a file's flags cannot be asked (a filesystem without them), only deleting finds it."""
    import curate.removal

    monkeypatch.setattr(curate.removal, "pinned", lambda path: None)
    before = (workdir / "run" / "out.parquet").read_bytes()
    dedup = folder_of(finished, "exact_dedup")
    shard = dedup / "data" / "shard-00000.parquet"
    with immutable(shard):  # only deleting finds it: the folder around it is writable
        result = curate_main("run", "spec.yaml", "--quiet", "--no-cache")
        assert result.code == 2 and "internal error" not in result.stderr, result
        assert f"{shard}: Operation not permitted" in result.stderr, result.stderr
        assert not (dedup / "_COMPLETE.json").exists()  # what is left is never taken for finished
        again = curate_main("run", "spec.yaml", "--quiet")  # its new output cannot replace it either
        assert again.code == 2 and "internal error" not in again.stderr, again
        assert f"{shard}: Operation not permitted" in again.stderr and "cached" not in again.stdout
    fixed = curate_main("run", "spec.yaml", "--quiet")
    assert fixed.code == 0, fixed
    assert (workdir / "run" / "out.parquet").read_bytes() == before


@ROOT
def test_an_immutable_file_in_a_step_folder_is_found_before_anything_is_removed_or_computed(curate_main,
                                                                                           finished):
    """Its flags are asked (lsattr's ioctl): --no-cache removes nothing, and a re-run that must
    recompute the step stops before computing it (it computed the whole step, then failed to
    replace the folder)."""
    dedup = folder_of(finished, "exact_dedup")
    shard = dedup / "data" / "shard-00000.parquet"
    with open(dedup / "dropped" / "shard-00000.parquet", "ab") as damaged:
        damaged.write(b"x")
    with immutable(shard):
        for flags in (("--no-cache",), ()):
            result = curate_main("run", "spec.yaml", "--quiet", *flags)
            assert result.code == 2 and "internal error" not in result.stderr, result
            assert f"{shard} is marked immutable (chattr +i)" in result.stderr, result.stderr
            assert "Nothing was" in result.stderr and "chattr -i" in result.stderr
            assert (dedup / "_COMPLETE.json").exists() and not list(dedup.parent.glob("*.partial"))
        assert "step 'exact_dedup' must be recomputed (" in result.stderr, result.stderr
        assert "shard-00000.parquet is not the file its marker recorded" in result.stderr


# -- another user: runs as nobody ------------------------------------------------------------------

@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder both root and nobody can reach (pytest's own tmp folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="curate-shared-", dir="/tmp"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def as_nobody(args: list[str], cwd: Path, umask: int = 0o022) -> subprocess.Popen[str]:
    """``python ARGS`` as user nobody. Through setpriv, which finds the interpreter before it gives
    up root's rights (a Python under /root, mode 0700, is found that way; a preexec setuid is not)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    return subprocess.Popen([setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable,
                             *args], cwd=cwd, env=cli_env(HOME=str(cwd)), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=lambda: os.umask(umask))


def nobody_runs(args: list[str], cwd: Path, umask: int = 0o022, timeout: float = 60) -> tuple[int, str]:
    process = as_nobody(args, cwd, umask)
    out, err = process.communicate(timeout=timeout)
    if "ModuleNotFoundError" in err or "Permission denied" in err and "python" in err.splitlines()[0]:
        pytest.skip(f"user nobody cannot run curate's Python here: {err.strip()[:200]}")
    return process.returncode, out + err


@ROOT
def test_another_users_store_is_named_when_no_cache_cannot_recompute_it(curate_main, write_spec, shared):
    store = shared / "store"
    store.mkdir(mode=0o777)
    store.chmod(0o777)
    spec = {**SPEC, "source": {"path": str(shared / "data.parquet")},
            "run": {"dir": "run", "shard_size": 10, "cache_dir": str(store)}}
    write_spec(spec)
    sample_table(40).write_parquet(shared / "data.parquet")
    assert curate_main("run", "spec.yaml", "--quiet").code == 0  # root's steps, 0755 folders
    mine = shared / "mine"
    mine.mkdir(mode=0o777)
    mine.chmod(0o777)
    (mine / "spec.yaml").write_text(json.dumps(spec))
    (mine / "spec.yaml").chmod(0o644)
    code, said = nobody_runs(["-m", "curate.cli", "run", "spec.yaml", "--quiet", "--no-cache"], mine)
    assert code == 2 and "cached" not in said, said  # not every step silently reused
    assert "cannot recompute step 'source' (--no-cache recomputes it)" in said
    assert "belongs to user root" in said and "user nobody may not delete in it" in said
    assert all((p / "_COMPLETE.json").exists() for p in store.iterdir() if p.is_dir() and p.name != REGISTRY)


@ROOT
def test_a_damaged_step_in_another_users_store_is_named_before_anything_is_computed(curate_main, write_spec,
                                                                                    workdir, shared):
    """Its fused group runs again: its neighbour's marker, first to go, failed with a bare
    "Permission denied" naming that step instead of the damaged one."""
    store = shared / "store"
    store.mkdir(mode=0o777)
    store.chmod(0o777)
    spec = {**SPEC, "source": {"path": str(shared / "data.parquet")},
            "steps": [{"step": "normalize_text"}, {"step": "filter", "params": {"where": "true"}}],
            "run": {"dir": "run", "shard_size": 10, "cache_dir": str(store)}}
    write_spec(spec)
    sample_table(40).write_parquet(shared / "data.parquet")
    assert curate_main("run", "spec.yaml", "--quiet").code == 0  # root's steps, 0755 folders
    filtered = Path(json.loads((workdir / "run" / "manifest.json").read_text())["steps"][2]["path"])
    with open(filtered / "data" / "shard-00001.parquet", "ab") as shard:
        shard.write(b"x")
    mine = shared / "mine"
    mine.mkdir(mode=0o777)
    mine.chmod(0o777)
    (mine / "spec.yaml").write_text(json.dumps(spec))
    (mine / "spec.yaml").chmod(0o644)
    code, said = nobody_runs(["-m", "curate.cli", "run", "spec.yaml", "--quiet"], mine)
    assert code == 2 and "Permission denied" not in said, said
    assert "step 'filter' must be recomputed" in said and "shard-00001.parquet is not the file" in said
    assert f"but its folder {filtered} cannot be changed" in said
    assert "belongs to user root" in said and "user nobody may not delete in it" in said
    assert "ask root to run it again" in said and "run.cache_dir" in said and "Nothing was changed" in said
    assert all((p / "_COMPLETE.json").exists() for p in store.iterdir() if p.is_dir() and p.name != REGISTRY)


@ROOT
def test_a_lock_file_another_user_may_only_read_still_names_its_holder_and_can_be_waited_for(shared):
    from curate.lock import LOCK_NAME, DirectoryLock

    lock = DirectoryLock(shared, "store")
    lock.acquire(wait=0)
    (shared / LOCK_NAME).chmod(0o644)  # as curate made them before: only its owner may write it
    take = "from curate.lock import DirectoryLock; import sys; " \
           "DirectoryLock(sys.argv[1], 'store').acquire(wait=float(sys.argv[2]) if sys.argv[2] else None); " \
           "print('taken', flush=True)"
    try:
        code, said = nobody_runs(["-c", take, str(shared), "0"], shared)
        assert code == 1 and "RunLockedError" in said and "Permission denied" not in said, said
        assert f"store {shared} is in use by another curate run: pid {os.getpid()}" in said
        assert "by user root" in said
        waiting = as_nobody(["-c", take, str(shared), ""], shared)
        assert waiting.stderr is not None
        line = waiting.stderr.readline()
        assert "curate: waiting for store" in line, line + waiting.stderr.read()
    finally:
        lock.release()
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 0 and out == "taken\n", err


@ROOT
@pytest.mark.parametrize("group_writable", [True, False])
def test_a_lock_left_by_another_users_dead_run_is_replaced_or_its_owner_named(shared, group_writable):
    from curate.lock import LOCK_NAME

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = shared / LOCK_NAME
    lock.write_text(json.dumps({"pid": dead.pid, "host": "elsewhere", "started_at": "2026-01-01T00:00:00+00:00",
                                "user": "root"}))
    lock.chmod(0o644)
    if not group_writable:
        shared.chmod(0o755)  # nobody may not remove it either
    code, said = nobody_runs(["-c", "from curate.lock import DirectoryLock; import sys; "
                                    "DirectoryLock(sys.argv[1], 'store').acquire(wait=0); print('taken')",
                              str(shared)], shared)
    if group_writable:
        assert code == 0 and "taken" in said, said
        assert f"pid {dead.pid}" in said and "which user root's run left and no longer runs" in said
    else:
        assert code == 1 and "RunLockedError" in said and f"locked by a run that no longer runs (pid {dead.pid}" \
            in said, said
        assert "belongs to user root (-rw-r--r--), and user nobody may neither write nor remove it" in said
        assert f"rm '{lock}'" in said


def test_the_lock_file_gets_the_permissions_the_umask_allows(tmp_path):
    """A store shared by a group (umask 002, setgid folder): its lock must be group-writable, as
    any file the run writes there, or the group's other users cannot take it."""
    from curate.lock import LOCK_NAME, DirectoryLock

    lock = DirectoryLock(tmp_path, "store")
    before = os.umask(0o002)
    try:
        lock.acquire(wait=0)
    finally:
        os.umask(before)
    try:
        assert (tmp_path / LOCK_NAME).stat().st_mode & 0o777 == 0o664
    finally:
        lock.release()


def test_a_lock_holder_names_its_user(tmp_path):
    from curate.lock import LOCK_NAME, DirectoryLock
    from curate.users import me

    lock = DirectoryLock(tmp_path, "store")
    lock.acquire(wait=0)
    try:
        assert json.loads((tmp_path / LOCK_NAME).read_text())["user"] == me()
    finally:
        lock.release()


@ROOT
def test_gc_in_a_store_another_user_shares_names_their_folders_and_deletes_none(curate_main, write_spec, shared):
    """Root's old folders (0755, umask 022) in a store nobody shares: nobody's run says it could not
    register (naming whose the registry is), and nobody's gc --delete stops before removing any."""
    store = shared / "store"
    store.mkdir(mode=0o777)
    store.chmod(0o777)
    sample_table(40).write_parquet(shared / "data.parquet")
    spec = {**SPEC, "source": {"path": str(shared / "data.parquet")},
            "run": {"dir": str(shared / "roots"), "shard_size": 10, "cache_dir": str(store)}}  # nobody may read it
    write_spec(spec)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    spec = {**spec, "steps": [{"step": "normalize_text", "params": {"max_length": 50}}, SPEC["steps"][1]]}
    write_spec(spec)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0  # root's first folders are unused now
    before = sorted(p for p in store.iterdir() if p.name != REGISTRY)
    mine = shared / "mine"
    mine.mkdir(mode=0o777)
    mine.chmod(0o777)
    (mine / "spec.yaml").write_text(json.dumps({**spec, "run": {**spec["run"], "dir": "run"}}))
    code, said = nobody_runs(["-m", "curate.cli", "run", "spec.yaml", "--quiet"], mine)
    assert code == 0 and "could not record run directory" in said and "Permission denied" not in said, said
    assert "belongs to user root (drwxr-xr-x), and user nobody may not write in it" in said
    code, said = nobody_runs(["-m", "curate.cli", "gc", "run", "--delete"], mine)
    assert code == 2 and "belongs to user root" in said and "Nothing was removed" in said, said
    assert sorted(p for p in store.iterdir() if p.name != REGISTRY) == before
