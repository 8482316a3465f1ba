"""``curate gc RUN_DIR``: the step folders no run directory's last run uses are listed, and deleted
only with --delete; every folder a run directory uses survives, in a run's own store and in a store
several run directories share, and the latest spec re-runs fully cached after it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.gc import collect
from curate.lock import locked
from curate.storeusers import REGISTRY
from curate.testing.runner import run_spec
from tests.conftest import sample_table


def spec(where: str = "length(alt_text) > 3", query: str = "SELECT * FROM input", dedup: list[str] | None = None,
         *, run_dir: str = "run", cache_dir: str | None = None, source: str = "data.parquet",
         last: bool = True) -> dict[str, Any]:
    steps = [{"step": "filter", "params": {"where": where, "reason": "short"}},
             {"step": "sql", "params": {"query": query}}]
    if last:
        steps.append({"step": "exact_dedup", "params": {"columns": dedup or ["url"]}})
    return {"name": "gc", "source": {"format": "parquet", "path": source}, "steps": steps,
            "outputs": [{"format": "parquet", "path": "out.parquet"}],
            "run": {"dir": run_dir, "shard_size": 25, "report": False,
                    **({"cache_dir": cache_dir} if cache_dir else {})}}


def folders(store: Path) -> set[str]:
    return {p.name for p in store.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")}


def used(run_dir: Path) -> set[str]:
    return {record["fingerprint"] for record in json.loads((run_dir / "manifest.json").read_text())["steps"]}


def gc_json(curate_main, *args: str) -> tuple[int, dict[str, Any]]:
    result = curate_main("gc", *args, "--json")
    return result.code, json.loads(result.stdout)


def all_cached(curate_main, spec_file: str = "spec.yaml") -> bool:
    result = curate_main("run", spec_file, "--json", "--quiet")
    assert result.code == 0, result.stderr
    return all(step["cached"] for step in json.loads(result.stdout)["steps"])


# -- one run directory, its own store ----------------------------------------------------------

def test_gc_lists_exactly_the_old_spec_s_folders_and_delete_frees_them(curate_main, write_spec, workdir):
    write_spec(spec(), table=sample_table(100))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    run, store = workdir / "run", workdir / "run" / "store"
    first = used(run)
    write_spec(spec(where="length(alt_text) > 5"))  # every step after the source changes
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    second, output = used(run), (run / "out.parquet").read_bytes()
    old = first - second
    assert len(old) == 3 and folders(store) == first | second

    listed = curate_main("gc", "run")
    assert listed.code == 0, listed.stderr
    assert "unused (--delete removes them): 3 step folder(s)" in listed.stdout
    assert all(name in listed.stdout for name in old) and "dry run, nothing deleted" in listed.stdout
    assert "filter" in listed.stdout and "last used 20" in listed.stdout
    assert folders(store) == first | second  # a dry run deletes nothing

    code, shown = gc_json(curate_main, "run")
    assert code == 0 and shown["status"] == "complete" and shown["deleted"] is False
    assert {f["folder"] for f in shown["folders"]} == old and {f["action"] for f in shown["folders"]} == {"delete"}
    assert {f["label"] for f in shown["folders"]} == {"filter", "sql", "exact_dedup"}
    assert shown["bytes"] == sum(f["bytes"] for f in shown["folders"]) > 0 and shown["freed_bytes"] == 0
    assert shown["referenced"] == 4 and shown["shared"] is False and shown["run_dirs"][0]["referenced"] == 4

    code, deleted = gc_json(curate_main, "run", "--delete")
    assert code == 0 and deleted["deleted"] is True and deleted["freed_bytes"] == shown["bytes"]
    assert {f["action"] for f in deleted["folders"]} == {"deleted"}
    assert folders(store) == second
    assert all_cached(curate_main) and (run / "out.parquet").read_bytes() == output
    code, again = gc_json(curate_main, "run")
    assert code == 0 and again["folders"] == []
    registration = json.loads(next((store / REGISTRY).glob("*.json")).read_text())
    assert set(registration["used"]) == second  # the deleted folders are forgotten


def test_a_step_dropped_from_the_spec_leaves_no_link_to_a_deleted_folder(curate_main, write_spec, workdir):
    write_spec(spec(), table=sample_table(60))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    write_spec(spec(last=False))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    steps = workdir / "run" / "steps"
    assert (steps / "03_exact_dedup").is_symlink()  # the older spec's, still there
    assert curate_main("gc", "run", "--yes").code == 0
    assert sorted(p.name for p in steps.iterdir()) == ["00_source", "01_filter", "02_sql"]
    assert all(p.resolve().is_dir() for p in steps.iterdir())
    assert all_cached(curate_main)


def test_a_held_lock_refuses_naming_the_holder_and_deletes_nothing(curate_main, write_spec, workdir):
    write_spec(spec(), table=sample_table(40))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    write_spec(spec(query="SELECT * FROM input WHERE score >= 0"))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    store = workdir / "run" / "store"
    before = folders(store)
    for held in (workdir / "run", store):
        with locked([(held, "run directory" if held.name == "run" else "store")]):  # a run holds it
            refused = curate_main("gc", "run", "--delete")
            code, shown = gc_json(curate_main, "run", "--delete")
        assert refused.code == 75 and "is in use by another curate run: pid" in refused.stderr, refused
        assert code == 75 and shown["status"] == "failed" and "in use by another curate run" in shown["error"]
        assert folders(store) == before
    assert curate_main("gc", "run", "--delete").code == 0 and len(folders(store)) < len(before)


def test_a_partial_folder_is_removed_and_what_is_not_a_step_folder_is_left_alone(curate_main, write_spec,
                                                                                  workdir):
    write_spec(spec(), table=sample_table(40))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    store = workdir / "run" / "store"
    kept = folders(store)
    partial = store / (sorted(kept)[0] + ".partial")  # what a run stopped inside a table step leaves
    (partial / "data").mkdir(parents=True)
    (partial / "data" / "shard-00000.parquet").write_bytes(b"half")
    (store / "notes.txt").write_text("mine")
    (store / ("ab" * 10)).symlink_to(workdir)  # a link named like a step folder: never followed
    code, shown = gc_json(curate_main, "run")
    [folder] = shown["folders"]
    assert folder["partial"] is True and folder["action"] == "delete" and folder["label"] is not None
    assert sorted(shown["left_alone"]) == ["abababababababababab", "notes.txt"]
    assert curate_main("gc", "run", "--delete").code == 0
    assert not partial.exists() and (store / "notes.txt").exists() and (store / ("ab" * 10)).is_symlink()
    assert folders(store) == kept and workdir.is_dir() and all_cached(curate_main)


def test_a_store_from_before_registration_is_its_run_directory_s_own(curate_main, write_spec, workdir):
    """An upgraded run directory: its store has no registry (runs before 2026-12-08 wrote none)."""
    write_spec(spec(), table=sample_table(60))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    first = used(workdir / "run")
    write_spec(spec(dedup=["url", "alt_text"]))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    store = workdir / "run" / "store"
    shutil.rmtree(store / REGISTRY)
    code, shown = gc_json(curate_main, "run")
    [old] = shown["folders"]
    assert old["folder"] in first and old["label"] is None and old["last_used_from"] == "written"
    assert old["action"] == "delete"
    assert curate_main("gc", "run", "--delete").code == 0 and all_cached(curate_main)


def test_a_moved_run_directory_is_relocated_first_then_known_by_its_new_place(curate_main, write_spec, workdir):
    write_spec(spec(), table=sample_table(60))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    write_spec(spec(where="length(alt_text) > 4"))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    shutil.move(workdir / "run", workdir / "moved")
    refused = curate_main("gc", "moved", "--delete")
    assert refused.code == 2 and "curate relocate" in refused.stderr and "internal" not in refused.stderr
    assert curate_main("relocate", "moved").code == 0
    code, shown = gc_json(curate_main, "moved", "--delete")
    assert code == 0 and shown["blocked"] == [] and len(shown["folders"]) == 3 and shown["deleted"]
    [registration] = (workdir / "moved" / "store" / REGISTRY).glob("*.json")
    assert json.loads(registration.read_text())["run_dir"] == str(workdir / "moved")


def test_gc_of_something_that_is_not_a_run_directory_says_so(curate_main, workdir):
    (workdir / "empty").mkdir()
    result = curate_main("gc", "empty")
    assert result.code == 2 and "not a curate run directory" in result.stderr and "internal" not in result.stderr


# -- a store several run directories share -----------------------------------------------------

@pytest.fixture
def two_run_dirs(curate_main, write_spec, workdir) -> Path:
    """Run directories a and b sharing the store 'shared': each ran one spec, then a ran another."""
    sample_table(80).write_parquet(workdir / "data.parquet")
    write_spec(spec(run_dir="a", cache_dir="shared"), name="a.yaml")
    write_spec(spec(where="length(alt_text) > 1", run_dir="b", cache_dir="shared"), name="b.yaml")
    for name in ("a.yaml", "b.yaml"):
        assert curate_main("run", name, "--quiet").code == 0
    write_spec(spec(where="length(alt_text) > 4", run_dir="a", cache_dir="shared"), name="a.yaml")
    assert curate_main("run", "a.yaml", "--quiet").code == 0
    return workdir / "shared"


def test_a_shared_store_keeps_every_folder_another_run_directory_uses(curate_main, workdir, two_run_dirs):
    store, a, b = two_run_dirs, workdir / "a", workdir / "b"
    old = folders(store) - used(a) - used(b)
    assert len(old) == 3 and used(a) & used(b)  # the source is both's
    code, shown = gc_json(curate_main, "a")
    assert code == 0 and shown["shared"] is True and shown["own_store"] is False
    assert {f["folder"] for f in shown["folders"]} == old and shown["blocked"] == []
    states = {use["run_dir"]: (use["state"], use["referenced"]) for use in shown["run_dirs"]}
    assert states == {str(a): ("this run directory", 4), str(b): ("uses this store", 4)}
    assert curate_main("gc", "b", "--delete").code == 0  # from either run directory
    assert folders(store) == used(a) | used(b)
    assert all_cached(curate_main, "a.yaml") and all_cached(curate_main, "b.yaml")


def test_a_registered_run_directory_that_is_gone_blocks_delete_until_forgotten(curate_main, workdir,
                                                                            two_run_dirs):
    store, a, b = two_run_dirs, workdir / "a", workdir / "b"
    before = folders(store)
    shutil.rmtree(b)
    listed = curate_main("gc", "a")
    assert listed.code == 0 and f"blocked: run directory {b} uses this store" in listed.stdout
    refused = curate_main("gc", "a", "--delete")
    assert refused.code == 2 and f"--forget {b}" in refused.stderr and "Nothing was removed" in refused.stderr
    assert folders(store) == before
    wrong = curate_main("gc", "a", "--delete", "--forget", str(workdir / "c"))
    assert wrong.code == 2 and "no such run directory is registered" in wrong.stderr
    itself = curate_main("gc", "a", "--delete", "--forget", str(a))
    assert itself.code == 2 and "it cannot be forgotten" in itself.stderr
    code, shown = gc_json(curate_main, "a", "--delete", "--forget", str(b))
    assert code == 0 and shown["forgotten"] == [str(b)] and folders(store) == used(a)
    assert len(list((store / REGISTRY).glob("*.json"))) == 1 and all_cached(curate_main, "a.yaml")


def test_a_registered_run_directory_that_is_there_cannot_be_forgotten(curate_main, workdir, two_run_dirs):
    result = curate_main("gc", "a", "--delete", "--forget", str(workdir / "b"))
    assert result.code == 2 and "it cannot be forgotten" in result.stderr


def test_folders_no_registration_knows_are_kept_in_a_shared_store_unless_all_registered(
        curate_main, workdir, two_run_dirs):
    """A folder of a run directory that last ran before registration (or with an older curate)."""
    store = two_run_dirs
    unknown = store / ("0" * 20)
    shutil.copytree(store / sorted(used(workdir / "b"))[0], unknown)
    code, shown = gc_json(curate_main, "a", "--delete")
    [kept] = [f for f in shown["folders"] if f["folder"] == unknown.name]
    assert code == 0 and kept["action"] == "keep" and "--all-registered" in kept["kept_because"]
    assert unknown.is_dir() and len(shown["folders"]) == 4
    assert "unused here, but kept: 1 step folder(s)" in curate_main("gc", "a").stdout
    assert curate_main("gc", "a", "--delete", "--all-registered").code == 0 and not unknown.exists()


# -- the property --------------------------------------------------------------------------------

VARIANTS = [
    {"where": "length(alt_text) > 3"},
    {"where": "length(alt_text) > 5"},
    {"where": "length(alt_text) > 3", "query": "SELECT * FROM input WHERE score >= 0.2"},
    {"where": "length(alt_text) > 3", "dedup": ["url", "alt_text"]},
    {"where": "length(alt_text) > 5", "last": False},
]
OPERATIONS = st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, len(VARIANTS) - 1),
                                st.sampled_from(["none", "dry", "delete"]), st.sampled_from("ab")),
                      min_size=1, max_size=5)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(OPERATIONS)
def test_after_any_edits_runs_and_gcs_every_run_directory_s_latest_spec_reruns_fully_cached(
        tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, int, str, str]]) -> None:
    """Two run directories share a store and one source file; each operation runs a spec variant in
    one of them, then gc (nothing, a dry run, or --delete) from either."""
    root = tmp_path_factory.mktemp("gc")
    data = root / "data.parquet"
    sample_table(60).write_parquet(data)
    latest: dict[str, dict[str, Any]] = {}
    for where, variant, gc, gc_from in operations:
        latest[where] = spec(**VARIANTS[variant], run_dir=str(root / where / "run"), cache_dir=str(root / "store"),
                             source=str(data))
        run_spec(latest[where], root / where)
        before = folders(root / "store")
        needed = set().union(*(used(root / name / "run") for name in latest))
        if gc == "none" or gc_from not in latest:
            continue
        survey = collect(root / gc_from / "run", delete=gc == "delete")
        after = folders(root / "store")
        assert needed <= after  # every folder a run directory uses survives
        assert after == (needed if gc == "delete" else before)  # a dry run deletes nothing
        assert {f.name for f in survey.folders} == before - needed  # gc lists exactly the others
    for name, last in latest.items():
        manifest = run_spec(last, root / name)
        assert all(step["cached"] for step in manifest["steps"]), name


def test_a_run_directory_naming_the_store_where_it_was_before_it_moved_blocks_delete(
        curate_main, write_spec, workdir):
    """The shared store was moved; a ran there since, b not yet: b's manifest names the old place,
    which is gone. b was taken for a run directory of "another store", and every folder only b
    used was deleted."""
    sample_table(80).write_parquet(workdir / "data.parquet")
    write_spec(spec(run_dir="a", cache_dir="shared"), name="a.yaml")
    write_spec(spec(where="length(alt_text) > 1", run_dir="b", cache_dir="shared"), name="b.yaml")
    for name in ("a.yaml", "b.yaml"):
        assert curate_main("run", name, "--quiet").code == 0
    shutil.move(workdir / "shared", workdir / "moved")
    store, b = workdir / "moved", workdir / "b"
    write_spec(spec(run_dir="a", cache_dir="moved"), name="a.yaml")
    assert curate_main("run", "a.yaml", "--quiet").code == 0
    before = folders(store)
    assert used(b) - used(workdir / "a")
    code, shown = gc_json(curate_main, "a", "--delete")
    assert code == 2 and folders(store) == before
    assert f"curate relocate {b} --store {store}" in shown["error"]
    assert curate_main("relocate", "b", "--store", str(store)).code == 0
    assert curate_main("gc", "a", "--delete").code == 0
    assert folders(store) == used(workdir / "a") | used(b)
    write_spec(spec(where="length(alt_text) > 1", run_dir="b", cache_dir="moved"), name="b.yaml")
    assert all_cached(curate_main, "b.yaml")


def test_a_step_folder_a_step_s_params_name_by_path_is_kept(curate_main, write_spec, workdir):
    """A step's params may name a file in another step's folder by its path (realign's ``model``
    is a captioner a training step left in its folder's artifacts, as the captioner's README says;
    here an sql step reads an older filter's rows): that folder is in use, not an old spec's."""
    write_spec(spec(), table=sample_table(100))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    run, store = workdir / "run", workdir / "run" / "store"
    [old_filter] = [r["path"] for r in json.loads((run / "manifest.json").read_text())["steps"]
                    if r["label"] == "filter"]
    query = f"SELECT * FROM input WHERE url NOT IN (SELECT url FROM read_parquet('{old_filter}/data/*.parquet'))"
    write_spec(spec(where="length(alt_text) > 5", query=query))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    code, shown = gc_json(curate_main, "run", "--delete")
    assert code == 0 and Path(old_filter).is_dir() and Path(old_filter).name not in {
        f["folder"] for f in shown["folders"]}
    assert all_cached(curate_main) and len(folders(store) - used(run)) == 1  # the old filter's only


def test_a_run_directory_registered_from_another_host_is_not_judged_by_a_namesake_here(
        curate_main, write_spec, workdir):
    """Run directories on node-local disks share a store on a network one, at the same path on
    each node: gc read this host's run directory of that name (another store's) for the one node-b
    registered, and deleted every folder only node-b's needed."""
    sample_table(80).write_parquet(workdir / "data.parquet")
    write_spec(spec(run_dir="a", cache_dir="shared"), name="a.yaml")
    write_spec(spec(where="length(alt_text) > 1", run_dir="b", cache_dir="shared"), name="b.yaml")
    for name in ("a.yaml", "b.yaml"):
        assert curate_main("run", name, "--quiet").code == 0
    store, b = workdir / "shared", workdir / "b"
    [registration] = [path for path in (store / REGISTRY).glob("*.json")
                      if json.loads(path.read_text())["run_dir"] == str(b)]
    registration.write_text(json.dumps({**json.loads(registration.read_text()), "host": "node-b"}))
    code, shown = gc_json(curate_main, "a")  # on a shared disk, node-b's run directory is the one here
    assert code == 0 and shown["blocked"] == [] and len(shown["folders"]) == 0
    shutil.move(b, workdir / "on-node-b")  # node-b's run directory, out of this host's sight
    write_spec(spec(where="length(alt_text) > 2", run_dir="b", cache_dir="other"), name="b.yaml")
    assert curate_main("run", "b.yaml", "--quiet").code == 0  # this host's namesake
    before = folders(store)
    code, shown = gc_json(curate_main, "a", "--delete")
    assert code == 2 and folders(store) == before and "node-b" in shown["error"]
    code, shown = gc_json(curate_main, "a", "--delete", "--forget", str(b))
    assert code == 0 and folders(store) == used(workdir / "a")


def test_this_run_directory_s_path_registered_last_from_another_host_blocks_delete(
        curate_main, write_spec, workdir):
    """One registration per path: node-b's run directory at this run directory's path (node-local
    disks) ran last and its registration replaced this one's; gc took it for this run directory's
    and deleted the folders node-b's run uses."""
    sample_table(80).write_parquet(workdir / "data.parquet")
    write_spec(spec(run_dir="a", cache_dir="shared"), name="a.yaml")
    write_spec(spec(where="length(alt_text) > 1", run_dir="b", cache_dir="shared"), name="b.yaml")
    for name in ("a.yaml", "b.yaml"):
        assert curate_main("run", name, "--quiet").code == 0
    store, a, b = workdir / "shared", workdir / "a", workdir / "b"
    by_dir = {json.loads(path.read_text())["run_dir"]: path for path in (store / REGISTRY).glob("*.json")}
    nodes_b = json.loads(by_dir[str(b)].read_text())  # as node-b's run at a's path wrote it
    by_dir[str(a)].write_text(json.dumps({**nodes_b, "run_dir": str(a), "host": "node-b"}))
    by_dir[str(b)].unlink()
    shutil.rmtree(b)
    before = folders(store)
    code, shown = gc_json(curate_main, "a", "--delete")
    assert code == 2 and folders(store) == before and "host node-b" in shown["error"]
    assert curate_main("run", "a.yaml", "--quiet").code == 0  # registered from here again
    code, shown = gc_json(curate_main, "a")
    assert code == 0 and shown["blocked"] == []
