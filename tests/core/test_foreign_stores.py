"""A run directory or a store from someone else (a run sent to inspect or resume, a colleague's
store in a shared cache_dir): what curate reads back there is data. Markers of the wrong shape
are recomputed, never summed; a marker sets no field of the manifest but its counts; links and
pipes in a step's folder or at curate's scratch names are neither written through nor waited
on; a lock file's holder is shown with escapes; and the spec saved in a run directory runs with
full trust only while a spec file of the user's says the same."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from curate.runstore import StoreWarning
from tests.conftest import sample_table
from tests.core.test_run_dir_safety import no_endless_wait, spec_with


@pytest.fixture
def finished(curate_main, write_spec, workdir) -> Path:
    write_spec(spec_with(run={"dir": "run", "shard_size": 10}), table=sample_table(40))
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 0, result
    return workdir / "run"


def step_dir(run: Path, index: int) -> Path:
    return run / "store" / json.loads((run / "manifest.json").read_text())["steps"][index]["fingerprint"]


def edit_json(file: Path, **changes) -> None:
    data = json.loads(file.read_text())
    data.update(changes)
    file.write_text(json.dumps(data))


@pytest.mark.parametrize("changes", [
    {"rows_in": "lots"}, {"rows_out": 1.5}, {"dropped": {"filter": "21"}}, {"seconds": "slow"}, {"shards": True},
    {"summary": ["not", "an", "object"]}, {"files": {"data/shard-00000.parquet": 7}},
])
def test_a_step_marker_of_the_wrong_shape_is_recomputed_not_summed(curate_main, finished, changes):
    output = (finished / "out.parquet").read_bytes()
    marker = step_dir(finished, 3) / "_COMPLETE.json"  # exact_dedup, a table step
    edit_json(marker, **changes)
    name = next(iter(changes))
    with pytest.warns(StoreWarning, match=rf"step 'exact_dedup' is recomputed: its marker .* is damaged: {name}"):
        ran = curate_main("run", "spec.yaml", "--quiet")
    assert ran.code == 0, ran
    assert (finished / "out.parquet").read_bytes() == output
    inspected = curate_main("inspect", "run")  # the manifest the run wrote is one curate reads back
    assert inspected.code == 0, inspected


def test_a_marker_sets_no_field_of_the_manifest_record_but_its_own(curate_main, finished, workdir):
    import duckdb

    elsewhere = workdir / "users_other_run"  # a folder of the user's, laid out like a step's
    (elsewhere / "data").mkdir(parents=True)
    pl.DataFrame({"uid": ["u"], "secret": ["the user's own rows"]}).write_parquet(elsewhere / "data" / "shard-00000.parquet")
    edit_json(step_dir(finished, 3) / "_COMPLETE.json", path=str(elsewhere), index=0, label="renamed",
              complete=False, fused=["x"])
    ran = curate_main("run", "spec.yaml", "--quiet")
    assert ran.code == 0, ran
    records = json.loads((finished / "manifest.json").read_text())["steps"]
    assert [(r["index"], r["label"], r["path"]) for r in records] == [
        (i, label, str(step_dir(finished, i))) for i, label in enumerate(["source", "normalize_text", "filter",
                                                                         "exact_dedup"])]
    assert all(r["complete"] and "fused" not in r for r in records[3:])
    with duckdb.connect(str(finished / "curate.duckdb"), read_only=True) as con:
        final = con.sql("SELECT * FROM final").pl()
    assert "secret" not in final.columns and final.height == pl.read_parquet(finished / "out.parquet").height


@pytest.mark.parametrize("fuse", [True, False])
def test_a_shard_marker_of_the_wrong_shape_is_redone(curate_main, write_spec, workdir, fuse):
    write_spec(spec_with(run={"dir": "run", "shard_size": 10, "fuse": fuse}), table=sample_table(40))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    run = workdir / "run"
    output = (run / "out.parquet").read_bytes()
    filter_dir = step_dir(run, 2)  # with fuse, the group normalize_text + filter keeps its markers here
    (filter_dir / "_COMPLETE.json").unlink()  # cut off: its finished shards are kept by their markers
    marker = filter_dir / "shards" / "00001.json"
    data = json.loads(marker.read_text())
    data["rows_in"] = "ten"
    if fuse:
        data["members"][0]["seconds"] = "x"
    marker.write_text(json.dumps(data))
    with pytest.warns(StoreWarning, match=r"shard 1 was recomputed: .*damaged: rows_in must be an integer"):
        ran = curate_main("run", "spec.yaml", "--quiet")
    assert ran.code == 0, ran
    assert (run / "out.parquet").read_bytes() == output


def test_a_link_in_an_unfinished_steps_folder_is_refused_not_written_through(curate_main, write_spec, workdir):
    write_spec(spec_with(run={"dir": "run", "shard_size": 10, "fuse": False}), table=sample_table(40))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    run = workdir / "run"
    normalize = step_dir(run, 1)  # a shard step: it runs again in its folder as it finds it
    (normalize / "_COMPLETE.json").unlink()
    (normalize / "shards" / "00002.json").unlink()
    outside = workdir / "users_folder"
    outside.mkdir()
    (outside / "notes.txt").write_text("mine")
    (normalize / "data").rename(workdir / "moved_data")
    (normalize / "data").symlink_to(outside)  # the step would write its shard 2 into the user's folder
    (normalize / "artifacts").mkdir(exist_ok=True)
    (normalize / "artifacts" / "state.json").symlink_to(outside / "notes.txt")
    os.mkfifo(normalize / "artifacts" / "pipe")
    with no_endless_wait():
        ran = curate_main("run", "spec.yaml", "--quiet")
    assert ran.code == 2, ran
    assert f"step 'normalize_text' cannot run in {normalize}" in ran.stderr
    for entry, kind in [("data", f"a symbolic link to {outside}"), ("artifacts/state.json", "a symbolic link to"),
                        ("artifacts/pipe", "a pipe (FIFO)")]:
        assert f"{normalize / entry} is {kind}" in ran.stderr and f"rm '{normalize / entry}'" in ran.stderr
    assert "internal error" not in ran.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["notes.txt"] and (outside / "notes.txt").read_text() == "mine"
    for entry in ("data", "artifacts/state.json", "artifacts/pipe"):  # the fix the message gives
        (normalize / entry).unlink()
    with pytest.warns(StoreWarning, match="which its marker recorded, is missing"):  # data/ went with the link
        ran = curate_main("run", "spec.yaml", "--quiet")
    assert ran.code == 0, ran
    assert sorted(p.name for p in outside.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("where", ["partial", "staging"])
def test_a_pipe_or_link_at_a_scratch_name_is_removed_not_waited_on(curate_main, write_spec, workdir, where):
    # exact_dedup writes store/<fp>.partial first; a JSON Lines source is staged in tmp/ingest-<fp>.partial
    sample_table(40).write_ndjson(workdir / "data.jsonl")
    write_spec(spec_with(source={"path": "data.jsonl"}, run={"dir": "run", "shard_size": 10}))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    run = workdir / "run"
    output = (run / "out.parquet").read_bytes()
    target = step_dir(run, 3 if where == "partial" else 0)
    scratch = (target.with_name(target.name + ".partial") if where == "partial"
               else run / "tmp" / f"ingest-{target.name}.partial")
    users = workdir / "users_folder"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    for make in (os.mkfifo, lambda path: path.symlink_to(users)):
        (target / "_COMPLETE.json").unlink()
        scratch.parent.mkdir(exist_ok=True)
        make(scratch)
        with no_endless_wait():
            ran = curate_main("run", "spec.yaml", "--quiet")
        assert ran.code == 0 and "internal error" not in ran.stderr, ran
        assert (run / "out.parquet").read_bytes() == output
        assert not scratch.exists() and not scratch.is_symlink()
    assert [p.name for p in users.iterdir()] == ["notes.txt"] and (users / "notes.txt").read_text() == "mine"


def test_a_lock_files_holder_is_shown_with_escapes(curate_main, finished):
    holder = {"pid": 999999, "host": "elsewhere\x1b]0;title\x07\x1b[2J", "started_at": "x" * 5000,
              "command": "curate run \x1b[31mred\u202eevil"}
    (finished / ".curate.lock").write_text(json.dumps(holder))
    ran = curate_main("run", "spec.yaml", "--quiet")
    assert ran.code == 0, ran
    line = next(line for line in ran.stderr.splitlines() if "taking over the lock" in line)
    assert "\x1b" not in line and "\u202e" not in line and "\x07" not in line
    assert "elsewhere\\x1b]0;title\\x07\\x1b[2J" in line and "red\\u202eevil" in line
    assert len(line) < 1000  # the holder's fields are cut to what curate writes


# -- curate run --resume: the spec saved in the run directory --------------------------------
LEAKY = {"step": "sql", "params": {"query": "SELECT *, (SELECT content FROM read_text('{secret}')) AS leaked "
                                            "FROM input"}}


@pytest.fixture
def received(curate_main, write_spec, workdir) -> Path:
    """A run someone sent: its saved spec reads a file of this computer into its output, and its
    manifest names no spec file (or one of theirs, which is not here)."""
    (workdir / "secret.txt").write_text("the user's secret")
    (workdir / "theirs.txt").write_text("a file of theirs")
    theirs = LEAKY["params"]["query"].replace("{secret}", str(workdir / "theirs.txt"))
    spec = spec_with(source={"path": str(workdir / "data.parquet")}, steps=[{"step": "sql", "params": {"query": theirs}}],
                     run={"dir": "received", "shard_size": 10})
    write_spec(spec, table=sample_table(20))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    run = workdir / "received"
    saved = yaml.safe_load((run / "spec.yaml").read_text())
    saved["steps"][0]["params"]["query"] = LEAKY["params"]["query"].replace("{secret}", str(workdir / "secret.txt"))
    saved["outputs"].append({"format": "csv", "path": str(workdir / "users_own.csv"), "step": None, "params": {}})
    (run / "spec.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    (workdir / "users_own.csv").write_text("the user's own table")
    (workdir / "spec.yaml").unlink()
    return run


@pytest.mark.parametrize("spec_path", [None, "/home/someone/spec.yaml", "received/spec.yaml"])
def test_a_received_runs_saved_spec_is_resumed_as_untrusted(curate_main, received, workdir, spec_path):
    edit_json(received / "manifest.json", spec_path=spec_path)
    ran = curate_main("run", "--resume", "received", "--quiet")
    assert ran.code == 2, ran
    assert "as untrusted" in ran.stderr and "To run your own spec here with full trust: curate run" in ran.stderr
    assert "file system operations are disabled" in ran.stderr  # its SQL reads no file of this computer
    assert "is outside the run directory, and the spec is untrusted" in ran.stderr  # nor writes one
    assert (workdir / "users_own.csv").read_text() == "the user's own table"
    assert not (received / "out.parquet").exists() or "secret" not in (received / "out.parquet").read_bytes().decode(
        "latin-1")


def test_the_users_own_unchanged_spec_resumes_with_full_trust(curate_main, write_spec, workdir):
    (workdir / "secret.txt").write_text("the user's own file, read on purpose")
    query = LEAKY["params"]["query"].replace("{secret}", str(workdir / "secret.txt"))
    write_spec(spec_with(steps=[{"step": "sql", "params": {"query": query}}], run={"dir": "run", "shard_size": 10}),
               table=sample_table(20))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    step_dir(workdir / "run", 1).joinpath("_COMPLETE.json").unlink()
    resumed = curate_main("run", "--resume", "run", "--quiet")
    assert resumed.code == 0, resumed
    assert "untrusted" not in resumed.stderr and "note:" not in resumed.stderr
    assert set(pl.read_parquet(workdir / "run" / "out.parquet")["leaked"]) == {"the user's own file, read on purpose"}
    explicit = curate_main("run", "--resume", "run", "--quiet", "--untrusted")  # asked for: no note needed
    assert explicit.code == 2 and "note:" not in explicit.stderr, explicit
    assert "file system operations are disabled" in explicit.stderr


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_spec_file_of_another_user_vouches_for_nothing(curate_main, write_spec, workdir):
    # on a shared machine, whoever sent the run could leave a copy of its saved spec for its manifest to name
    write_spec(spec_with(run={"dir": "run", "shard_size": 10}), table=sample_table(20))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    os.chown(workdir / "spec.yaml", 65534, 65534)
    resumed = curate_main("run", "--resume", "run", "--quiet")
    assert resumed.code == 0, resumed
    assert f"note: {workdir / 'spec.yaml'} belongs to another user; resuming with the spec saved in" in resumed.stderr
    assert "as untrusted" in resumed.stderr


# -- links at the folders curate makes itself: tmp/, store/, store/<fingerprint> ---------------
def users_folder(workdir: Path) -> Path:
    folder = workdir / "users_folder"
    folder.mkdir()
    for name in ("notes.txt", "source", "duckdb", "outputs"):  # named as curate names its scratch
        (folder / name).write_text("mine")
    return folder


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"" for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("command", [("run", "spec.yaml"), ("run", "--resume", "run")])
@pytest.mark.parametrize("where", ["tmp", "store", "store/<fp>"])
def test_a_link_at_a_folder_curate_makes_is_refused_before_anything_is_written(curate_main, finished, workdir,
                                                                               where, command):
    """A run directory from elsewhere (or a colleague's store) with tmp/, store/ or a step's folder
    linked to a folder of the user's: a run wrote and deleted there (a step's folder and its
    .partial, DuckDB's spill files, staged outputs)."""
    users = users_folder(workdir)
    (step_dir(finished, 3) / "_COMPLETE.json").unlink()  # exact_dedup, unfinished: it runs again, in its folder
    if where == "store/<fp>":
        where = f"store/{step_dir(finished, 3).name}"
    if where == "tmp":
        shutil.rmtree(finished / where)
    else:  # the store's own folders go with it, as in a store kept elsewhere
        for entry in (finished / where).iterdir():
            entry.rename(users / entry.name)
        (finished / where).rmdir()
    (finished / where).symlink_to(users)
    before = listing(users)
    ran = curate_main(*command, "--quiet")
    assert ran.code == 2, ran
    assert f"{finished / where} is a symbolic link to {users}, where curate keeps a folder of its own" in ran.stderr
    assert f"rm '{finished / where}'" in ran.stderr and "internal error" not in ran.stderr
    assert listing(users) == before
    assert (finished / where).is_symlink()
    (finished / where).unlink()  # the fix it gives: the run computes what it needs again
    assert curate_main(*command, "--quiet").code == 0


def test_a_cache_dir_under_a_linked_folder_is_the_users_own(curate_main, write_spec, workdir):
    """run.cache_dir is a path the user chose: a link above it (/home leading to /data/home) or at
    it is theirs, and the store is used; a link at a step's folder inside it is still refused."""
    (workdir / "disk" / "cache").mkdir(parents=True)
    (workdir / "home").symlink_to(workdir / "disk")
    (workdir / "cache_link").symlink_to(workdir / "disk" / "cache")
    for cache_dir in ("home/cache", "cache_link"):
        write_spec(spec_with(run={"dir": "run", "shard_size": 10, "cache_dir": cache_dir}), table=sample_table(40))
        ran = curate_main("run", "spec.yaml", "--quiet")
        assert ran.code == 0, ran
        records = json.loads((workdir / "run" / "manifest.json").read_text())["steps"]
        assert all(Path(r["path"]).parent == workdir / "disk" / "cache" for r in records)
        assert curate_main("run", "--resume", "run", "--quiet").code == 0
    fingerprint = Path(records[3]["path"])
    fingerprint.rename(workdir / "moved")
    fingerprint.symlink_to(workdir / "moved")
    ran = curate_main("run", "spec.yaml", "--quiet")
    assert ran.code == 2 and f"{fingerprint} is a symbolic link to {workdir / 'moved'}" in ran.stderr, ran


def test_an_untrusted_spec_does_not_reuse_rows_its_run_directory_came_with(curate_main, workdir):
    """A bundle shipped runs/NAME/store with its rows rewritten (and the markers' checksums too):
    the untrusted run reused them, and every output alt-text was the sender's (security re-probe)."""
    pl.DataFrame({"url": ["https://a/1.jpg", "https://a/2.jpg"], "alt_text": ["one", "two"]}).write_parquet(
        workdir / "d.parquet")
    (workdir / "spec.yaml").write_text("name: s\nsource: {format: parquet, path: d.parquet}\n"
                                       "steps:\n  - {step: filter, params: {where: 'true'}}\n"
                                       "run: {dir: runs/s, report: false}\n")
    assert curate_main("run", "spec.yaml", "--quiet").code == 0  # the sender's run, shipped with the spec
    refused = curate_main("run", "spec.yaml", "--untrusted", "--quiet")
    assert refused.code == 2 and "already holds the rows of 2 steps (source, filter)" in refused.stderr
    assert "--resume" in refused.stderr and "--run-dir NEW" in refused.stderr
    assert curate_main("run", "spec.yaml", "--untrusted", "--quiet", "--run-dir", "runs/mine").code == 0
    assert curate_main("run", "--resume", "runs/s", "--untrusted", "--quiet").code == 0  # knowingly
