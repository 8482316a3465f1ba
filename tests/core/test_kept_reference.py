"""kept.json (a source read in place) is data, and nothing read from a run directory reaches SQL
unquoted: a run directory may come from someone else, and the first kept.json held SQL that
the run's views, ``curate report`` and a resumed run executed as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from curate.keptref import KeptReference, KeptReferenceError, read_reference
from curate.runstore import COMPLETE, DATABASE, StoreWarning, kept_relation, write_views
from tests.core.test_store_fingerprints import again, copy_of, step_dir, stored

NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=12)
# A folder holding *, ? or [ is a pattern to DuckDB's reader: curate refuses such source files before
# writing a reference (tests/core/test_pattern_paths.py), and DuckDB cannot read one whose folders
# also hold a backslash in a name, even escaped (CI drew the folder '\\*').
FOLDERS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00*?["), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None)
@given(names=st.lists(NAMES, min_size=1, max_size=4, unique_by=str.lower), folder=FOLDERS, uids=st.booleans())
@example(names=["0"], folder="\\", uids=False)
def test_a_reference_reads_its_files_whatever_their_names_and_columns(tmp_path_factory, names, folder, uids):
    """Quotes, semicolons and SQL in a path or a column name are a path and a name."""
    base = tmp_path_factory.mktemp("ref")
    where = base / folder.replace("/", "_")
    where.mkdir(exist_ok=True)
    frames = [pl.DataFrame({name: [f"{i}-{k}" for k in range(3)] for name in names}) for i in range(2)]
    files = []
    for i, frame in enumerate(frames):
        path = where / f"{i}'\";--.parquet"
        frame.write_parquet(path)
        files.append(path.as_posix())
    reference = KeptReference(tuple(files), tuple((n, f"c{j}") for j, n in enumerate(names)), uids,
                              ("uid", *(f"c{j}" for j in range(len(names)))))
    assert KeptReference.from_json(json.loads(json.dumps(reference.to_json()))) == reference
    got = duckdb.connect().sql(f"SELECT * FROM {reference.relation()} ORDER BY _file, _row").pl()
    assert got["_file"].to_list() == [0, 0, 0, 1, 1, 1] and got["_row"].to_list() == [0, 1, 2] * 2
    expected = pl.concat(frames).rename({n: f"c{j}" for j, n in enumerate(names)})
    assert got.drop("_file", "_row").equals(expected)


@pytest.mark.parametrize(("content", "said"), [
    ({"relation": "(SELECT 1)", "uids": True, "columns": ["uid"]}, "an older curate's, which held SQL"),
    ([1, 2], "is not a JSON object"),
    ({"format": 2, "files": ["relative.parquet"], "select": [["a", "a"]], "uids": True, "columns": []},
     "'files' is not a list of absolute paths"),
    ({"format": 2, "files": ["/a.parquet"], "select": [["a"]], "uids": True, "columns": []}, "'select'"),
    ({"format": 2, "files": ["/a.parquet"], "select": [["a", "a"]], "uids": "yes", "columns": []}, "'uids'"),
])
def test_a_reference_this_curate_did_not_write_is_refused(tmp_path, content, said):
    path = tmp_path / "kept.json"
    path.write_text(json.dumps(content))
    with pytest.raises(KeptReferenceError, match=re.escape(said)):
        read_reference(path)
    path.write_text("{not json")
    with pytest.raises(KeptReferenceError, match="is not JSON"):
        read_reference(path)


def _forge(workdir: Path, secret: Path, pwned: Path) -> Path:
    """The source step's kept.json as an older curate wrote it, with SQL that reads ``secret``
    and writes ``pwned``; the markers without fingerprints (a store from before them), so the
    format is the only thing that stands in the way."""
    source = step_dir(workdir, "source")
    columns = json.loads((source / "kept.json").read_text())["columns"]
    others = ", ".join(f"content AS {c}" for c in columns if c != "uid")
    relation = (f"(SELECT 0 AS _file, 0 AS _row, {others} FROM read_text('{secret}')); "
                f"COPY (SELECT 'pwned') TO '{pwned}'; SELECT * FROM (SELECT 1 AS _file)")
    (source / "kept.json").write_text(json.dumps({"relation": relation, "uids": True, "columns": columns}))
    for marker in [*(workdir / "run" / "store").glob(f"*/{COMPLETE}"), *(workdir / "run" / "store").glob("*/shards/*.json")]:
        facts = json.loads(marker.read_text())
        for field in ("files", "input_digest", "input_from"):  # input digests came after fingerprints
            facts.pop(field, None)
        for member in facts.get("members") or []:
            member.pop("files", None)
        marker.write_text(json.dumps(facts))
    manifest_path = workdir / "run" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for record in manifest["steps"]:  # the copy's own store, not the clean run's it was copied from
        record["path"] = str(step_dir(workdir, record["label"]))
    manifest_path.write_text(json.dumps(manifest))
    return source / "kept.json"


def test_an_older_kept_json_holding_sql_is_never_run(pm, tmp_path):
    """Its views, the report's reading of it and a run on the directory never execute it: the
    run recomputes the source group and stores what a clean run stores."""
    workdir, clean = copy_of(tmp_path, pm, "headed")
    secret, pwned = tmp_path / "secret.txt", tmp_path / "pwned.csv"
    secret.write_text("TOPSECRET")
    forged = _forge(workdir, secret, pwned)
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    record = next(r for r in manifest["steps"] if r["label"] == "source")
    assert kept_relation(manifest, record) is None
    write_views(workdir / "run", manifest)
    said = f"step 'source' is recomputed: {forged} is not in format 2 (an older curate's, which held SQL)"
    with pytest.warns(StoreWarning, match=re.escape(said)):
        manifest = again(workdir, tmp_path, pm, "headed")
    assert stored(manifest) == clean
    assert not pwned.exists()
    con = duckdb.connect(str(workdir / "run" / DATABASE), read_only=True)
    assert "TOPSECRET" not in str(con.sql('SELECT * FROM "00_source"').fetchall())


def test_a_forged_manifest_label_is_a_name_in_the_views_not_sql(pm, tmp_path):
    workdir, _ = copy_of(tmp_path, pm, "headed")
    pwned = tmp_path / "pwned.csv"
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    label = f"x' AS step; COPY (SELECT 1) TO '{pwned}'; --\"; COPY (SELECT 1) TO '{pwned}'; --"
    manifest["steps"][1]["label"] = label
    manifest["steps"][2]["index"] = "2); COPY (SELECT 1) TO 'elsewhere.csv'; --"  # not a number: left out
    write_views(workdir / "run", manifest)
    assert not pwned.exists() and not Path("elsewhere.csv").exists()
    con = duckdb.connect(str(workdir / "run" / DATABASE), read_only=True)
    steps = {row[0] for row in con.sql("SELECT DISTINCT step FROM lineage").fetchall()}
    assert label in steps
    views = {row[0] for row in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert f"01_{label}_dropped" in views


def test_a_reference_to_a_pipe_or_a_moved_source_is_nothing_to_read(pm, tmp_path):
    """The views (and the report) do not wait on a pipe a forged kept.json names, nor fail on a
    source that was moved since the run: the step's kept rows are then not shown."""
    import os
    import threading

    workdir, _ = copy_of(tmp_path, pm, "headed")
    _forge(workdir, tmp_path / "unused", tmp_path / "unused.csv")  # the copy's own paths in its manifest
    source = step_dir(workdir, "source")
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    record = next(r for r in manifest["steps"] if r["label"] == "source")
    fifo = tmp_path / "rows.parquet"
    os.mkfifo(fifo)
    reference = KeptReference((str(fifo),), (("url", "url"),), True, ("uid", "url"))
    for files in ((str(fifo),), (str(tmp_path / "moved.parquet"),)):
        (source / "kept.json").write_text(json.dumps({**reference.to_json(), "files": list(files)}))
        assert kept_relation(manifest, record) is None
        done = []
        thread = threading.Thread(target=lambda: done.append(write_views(workdir / "run", manifest)), daemon=True)
        thread.start()
        thread.join(30)
        assert done, "write_views waited on a pipe"


def test_a_reference_naming_other_files_than_the_source_is_not_reused(pm, tmp_path):
    """A store copied in from elsewhere (a shared run.cache_dir) whose kept.json is format 2 and
    whose marker fingerprints it, but which names another Parquet file than the source: a run
    recomputes the source group instead of reading that file as the source's rows into its
    views and report."""
    from curate.shards import file_fingerprint

    workdir, clean = copy_of(tmp_path, pm, "headed")
    source = step_dir(workdir, "source")
    reference = json.loads((source / "kept.json").read_text())
    secret = tmp_path / "secret.parquet"
    pl.read_parquet(reference["files"][0]).with_columns(pl.lit("TOPSECRET").alias("alt_text")).write_parquet(secret)
    (source / "kept.json").write_text(json.dumps({**reference, "files": [str(secret)]}))
    marker = source / COMPLETE
    facts = json.loads(marker.read_text())
    facts["files"]["kept.json"] = file_fingerprint(source / "kept.json")  # the forger writes both
    marker.write_text(json.dumps(facts))
    said = "step 'source' is recomputed: its kept.json names other files or columns than this run's source reads"
    with pytest.warns(StoreWarning, match=re.escape(said)):
        manifest = again(workdir, tmp_path, pm, "headed")
    assert stored(manifest) == clean
    con = duckdb.connect(str(workdir / "run" / DATABASE), read_only=True)
    assert "TOPSECRET" not in str(con.sql('SELECT * FROM "00_source"').fetchall())


@settings(max_examples=20, deadline=None)
@given(order=st.permutations(range(6)), repeat=st.booleans())
def test_a_references_file_position_is_its_place_in_the_list(tmp_path_factory, order, repeat):
    """``_file`` is the file's index in the reference's list, in any order and with differing
    columns (DuckDB's ``file_index``; the CASE over 2,000 file names it replaced cost 0.4 ms a row)."""
    base = tmp_path_factory.mktemp("position")
    files = []
    for i in order:
        path = base / f"f{i}.parquet"
        columns = {"a": [f"{i}-{k}" for k in range(i + 1)]} | ({"b": [1] * (i + 1)} if i % 2 else {})
        pl.DataFrame(columns).write_parquet(path)
        files.append(path.as_posix())
    if repeat:  # a file listed twice is read twice, at both places
        files.append(files[0])
    reference = KeptReference(tuple(files), (("a", "a"),), uids=True, columns=("a",))
    read = duckdb.connect().sql(f"SELECT _file, _row, a FROM {reference.relation()}").pl()
    expected = [(place, row, pl.read_parquet(path)["a"][row]) for place, path in enumerate(files)
                for row in range(pl.read_parquet(path).height)]
    assert sorted(read.iter_rows()) == sorted(expected)


@pytest.mark.parametrize("change", ["appended", "written back with its time", "touched"])
def test_a_source_file_changed_since_the_run_is_not_read_under_its_old_uids(pm, tmp_path, change):
    """A source read in place (``fuse_heads``) keeps its uids apart from its rows (``uids/``, row
    for row). A file of it changed since the run (a new day's rows appended, a correction of the
    same size written back with its old modification time, a touch) was read by the run's views
    and report beside the old uids: rows under another row's uid, appended rows with none. Such a
    reference is now nothing to read until the run is run again (which recomputes the source:
    its fingerprint counts size, modification and change time)."""
    import os

    workdir, _ = copy_of(tmp_path, pm, "headed")
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    record = next(r for r in manifest["steps"] if r["label"] == "source")
    record["path"] = str(step_dir(workdir, "source"))
    assert kept_relation(manifest, record) is not None
    data = tmp_path / "data.parquet"
    before, frame = os.stat(data), pl.read_parquet(data)
    if change == "appended":
        pl.concat([frame, frame.head(3).with_columns(pl.col("alt_text") + " (new)")]).write_parquet(data)
    elif change == "written back with its time":
        first = frame["alt_text"][0]
        frame.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(first.upper() if first != first.upper()
                           else first.lower())).otherwise(pl.col("alt_text")).alias("alt_text")).write_parquet(data)
        os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    else:
        os.utime(data)
    assert kept_relation(manifest, record) is None
    write_views(workdir / "run", manifest)
    con = duckdb.connect(str(workdir / "run" / DATABASE), read_only=True)
    views = {row[0] for row in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert "00_source" not in views


def test_a_reference_written_before_versions_is_read_and_reused_as_before(pm, tmp_path):
    """A kept.json without ``versions`` (an older curate's) is read as it was, and a run of the
    same spec reuses its step rather than recompute the source group on upgrading."""
    from curate.shards import file_fingerprint

    workdir, _ = copy_of(tmp_path, pm, "headed")
    source = step_dir(workdir, "source")
    reference = json.loads((source / "kept.json").read_text())
    assert len(reference.pop("versions")) == 1
    (source / "kept.json").write_text(json.dumps(reference))
    marker = source / COMPLETE
    facts = json.loads(marker.read_text())
    facts["files"]["kept.json"] = file_fingerprint(source / "kept.json")  # as the older curate recorded it
    marker.write_text(json.dumps(facts))
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    record = next(r for r in manifest["steps"] if r["label"] == "source")
    record["path"] = str(source)
    assert kept_relation(manifest, record) is not None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", StoreWarning)
        manifest = again(workdir, tmp_path, pm, "headed")
    assert next(r for r in manifest["steps"] if r["label"] == "source")["cached"]
