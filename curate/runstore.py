"""The run directory: a place you can read with DuckDB, resume, and inspect.

    RUN_DIR/
      spec.yaml            the spec as run
      .curate.lock         while a run holds it: pid, host, start time (see curate.lock)
      manifest.json        spec hash, plugin versions, per-step fingerprints, rows, drops, timings
      curate.duckdb        one view per step output ("03_clip_filter"), its drops, and `lineage`
      steps/NN_label       → store/<fingerprint> (symlinks, for people and shells)
      store/<fingerprint>/ data/shard-*.parquet, dropped/shard-*.parquet, shards/*.json markers,
                           artifacts/ (sidecars: embeddings, indexes), _COMPLETE.json,
                           _INPUT.json (the input its leftovers came from: curate.inputdigest)
                           (the markers hold each stored file's size and CRC-32, and the size of
                           each image file its rows point at in artifacts/: reuse checks them)
                           (a step fused with the steps after it has no data/ and no shards/:
                           its group's last step holds them; see curate.fusion)
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curate.atomic import atomic_path
from curate.errors import RunDirError, UsageError
from curate.inputdigest import INPUT_RECORD, input_problem
from curate.keptref import KeptReferenceError, read_reference
from curate.lock import LOCK_NAME
from curate.runfiles import COMPLETE, MANIFEST, MANIFEST_LIMIT, describe_mode, json_value, read_json, read_text
from curate.shapes import COUNT, NUMBER, TEXT, counts_problem, fields_problem, json_type, step_marker_problem
from curate.storedimages import images_problem
from curate.shards import (
    KEPT_REFERENCE,
    files_problem,
    in_shard_order,
    iter_dropped_files,
    iter_shard_files,
    parquet_rows,
    relative,
    write_json_atomic,
)

DATABASE = "curate.duckdb"
# What curate itself keeps in a run directory (the layout above, the report plugin's page and
# the scratch space of DuckDB, ingest and remote outputs): no output may be written over them.
RUN_DIR_FILES = ("spec.yaml", MANIFEST, DATABASE, "report.html", LOCK_NAME)
RUN_DIR_FOLDERS = ("store", "steps", "tmp")


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's manifest, checked: a damaged one (a run killed mid-write on a filesystem without
    atomic renames, an edit by hand) is a RunDirError naming the file and the repair."""
    path = Path(run_dir) / MANIFEST
    if not path.exists() and not path.is_symlink():
        left = [name for name in ("spec.yaml", "store", "steps") if (Path(run_dir) / name).exists()]
        if left:  # a run directory that lost its manifest (deleted, or left out of a copy)
            raise _damaged(run_dir, path, f"it is missing, though {', '.join(left)} of a run "
                           f"{'is' if len(left) == 1 else 'are'} there")
        raise UsageError(
            f"{run_dir} is not a curate run directory (no {MANIFEST})",
            "pass the directory a 'curate run' wrote, e.g. runs/quickstart",
        )
    try:
        text = read_text(path, MANIFEST_LIMIT)
    except (OSError, UnicodeDecodeError) as exc:
        raise _damaged(run_dir, path, f"it cannot be read ({type(exc).__name__}: {exc})") from None
    try:
        manifest = json_value(text)
    except ValueError as exc:
        problem = "it is empty" if not text.strip() else f"it is not valid JSON ({exc})"
        raise _damaged(run_dir, path, problem) from None
    problem = manifest_problem(manifest)
    if problem is not None:
        spec_path = manifest.get("spec_path") if isinstance(manifest, dict) else None
        raise _damaged(run_dir, path, problem, spec_path if isinstance(spec_path, str) else None)
    return manifest


# The manifest's fields that curate reads back (inspect, report, resume), and their JSON types.
_MANIFEST_FIELDS: dict[str, tuple[type, ...]] = {
    "name": TEXT, "status": TEXT, "spec_hash": TEXT, "spec_path": TEXT, "run_dir": TEXT, "store_dir": TEXT,
    "started_at": TEXT, "finished_at": TEXT, "error": TEXT, "seed": COUNT, "seconds": NUMBER,
    "steps": (list,), "outputs": (list,), "plugins": (dict,), "stale_outputs": (list,),
}
_STEP_FIELDS: dict[str, tuple[type, ...]] = {
    "index": (int,), "label": (str,), "step": (str,), "path": TEXT, "rows_in": COUNT, "rows_out": COUNT,
    "dropped": (dict,), "seconds": NUMBER, "cached": (bool,), "complete": (bool,), "fused": (list,),
    "kept_rows_stored": (bool,), "columns": (dict,),
}
_STEP_REQUIRED = ("index", "label", "step")
_OUTPUT_FIELDS: dict[str, tuple[type, ...]] = {"format": (str,), "path": (str,)}
_STALE_FIELDS: dict[str, tuple[type, ...]] = {**_OUTPUT_FIELDS, "written_by": (dict,)}


def manifest_problem(manifest: Any) -> str | None:
    """What is wrong with the shape of a manifest read from JSON (None: nothing)."""
    if not isinstance(manifest, dict):
        return f"it holds {json_type(manifest)}, not an object"
    problem = fields_problem(manifest, _MANIFEST_FIELDS, (), "")
    if problem:
        return problem
    for index, record in enumerate(manifest.get("steps", [])):
        problem = fields_problem(record, _STEP_FIELDS, _STEP_REQUIRED, f"steps[{index}]")
        if problem:
            return problem
        problem = counts_problem(record.get("dropped", {}), f"steps[{index}].dropped")
        if problem:
            return problem
    for index, output in enumerate(manifest.get("outputs", [])):
        problem = fields_problem(output, _OUTPUT_FIELDS, tuple(_OUTPUT_FIELDS), f"outputs[{index}]")
        if problem:
            return problem
    for index, output in enumerate(manifest.get("stale_outputs", [])):
        problem = fields_problem(output, _STALE_FIELDS, tuple(_STALE_FIELDS), f"stale_outputs[{index}]")
        if problem:
            return problem
    return None


def _damaged(run_dir: Path, path: Path, problem: str, spec_path: str | None = None) -> RunDirError:
    spec = spec_path or "SPEC"
    return RunDirError(
        f"the run's manifest {path} is damaged: {problem}",
        f"run its spec again into the same directory to rewrite it (finished steps are reused): "
        f"curate run {spec} --run-dir {run_dir}" + ("" if spec_path else ", SPEC being the spec file this run came "
                                                   f"from ({Path(run_dir) / 'spec.yaml'} is a copy of it)"),
    )


def _kind(path: Path) -> str | None:
    """What ``path`` is, in words, without following a symbolic link (None: nothing is there)."""
    try:
        return describe_mode(path.lstat().st_mode)
    except OSError:  # nothing there, or under a file (ENOTDIR): what is above it is reported instead
        return None


def layout_problems(run_dir: Path, store_dir: Path, fingerprints: list[str], step_links: list[str]) -> list[str]:
    """Entries of the run directory and the store of the wrong kind, each with its fix: a folder
    where curate keeps a file or the reverse failed deep inside a run (IsADirectoryError,
    FileExistsError, NotADirectoryError); a pipe there made the run wait forever for a reader; and
    a symbolic link in place of one of curate's files had the run write through it, into the
    file it leads to (the lock file's holder over a user's file). A link in place of a folder
    curate makes itself (``tmp``, ``store``, ``store/<fingerprint>``) had a resumed run write and
    delete in the folder it leads to (:func:`link_problems`). Only ``lstat``: nothing is opened,
    created or changed, so ``curate validate`` runs it too."""
    files = [*(run_dir / name for name in RUN_DIR_FILES), store_dir / LOCK_NAME]
    folders = [run_dir / "steps", run_dir / "tmp", store_dir, *(store_dir / fp for fp in fingerprints)]
    problems: list[str] = []

    def wrong(path: Path, kind: str, keeps: str, also: str = "") -> None:
        remove = f"rm -r '{path}'" if kind == "a folder" else f"rm '{path}'"
        problems.append(f"{path} is {kind}, where curate keeps {keeps} (remove it: {remove}{also})")

    for path in dict.fromkeys(files):
        kind = _kind(path)
        if kind not in (None, "a file"):
            wrong(path, kind, "a file")
    for path in dict.fromkeys(folders):
        kind = _kind(path)
        if kind == "a symbolic link" and path == run_dir / "steps":
            # a run replaces the NN_* entries there: through a link, a folder of the user's lost its NN_* files
            wrong(path, kind, "a folder of its own (links to the steps' stores, which a run replaces)")
        elif kind == "a symbolic link" and path in _made_by_curate(run_dir, store_dir, fingerprints):
            problems.append(_link_problem(path, run_dir))
        elif kind == "a symbolic link" and not path.is_dir():  # a configured store_dir: its own links resolved
            wrong(path, "a symbolic link that leads to no folder", "a folder")
        elif kind not in (None, "a folder", "a symbolic link"):
            wrong(path, kind, "a folder")
    for name in step_links:  # steps/NN_label: a link (or a pointer file) to the step's store
        link = run_dir / "steps" / name
        kind = _kind(link)
        if kind not in (None, "a symbolic link", "a file"):
            wrong(link, kind, "a link to the step's store")
    return problems


def _link_problem(path: Path, run_dir: Path) -> str:
    """The problem of a link at ``path``, a folder curate makes itself (:func:`_made_by_curate`):
    a run writes, replaces and removes inside it, and through a link left in a run directory or
    a shared store it did so in the folder the link leads to."""
    also = ""
    if path == run_dir / "store":  # the one a user may have linked on purpose: the spec says it instead
        also = (f"; to keep the run's store in the folder it leads to, set it in the spec instead: "
                f"run: {{cache_dir: '{os.path.realpath(path)}'}}")
    return (f"{path} is a symbolic link to {os.readlink(path)}, where curate keeps a folder of its own, which "
            f"a run writes and deletes in (remove it: rm '{path}'{also})")


def link_problems(run_dir: Path, store_dir: Path, fingerprints: list[str]) -> list[str]:
    """The links among the folders curate makes itself (:func:`_made_by_curate`), each with its
    fix; :func:`layout_problems` says them too. Only ``lstat``."""
    return [_link_problem(path, run_dir) for path in _made_by_curate(run_dir, store_dir, fingerprints)
            if path.is_symlink()]


def _made_by_curate(run_dir: Path, store_dir: Path, fingerprints: list[str]) -> list[Path]:
    """The folders curate creates itself, by these names, and never as links: the run's scratch
    space, its store when no ``run.cache_dir`` names one, and every step's folder in the store.
    (A configured ``cache_dir`` is a path the user chose, resolved when planned: a link in it or
    above it, such as /home leading to /data/home, is theirs.)"""
    store_dir = Path(store_dir)
    own_store = [store_dir] if store_dir == run_dir / "store" else []
    return [run_dir / "tmp", *own_store, *(store_dir / fp for fp in fingerprints)]


def check_layout(run_dir: Path, store_dir: Path, fingerprints: list[str], step_links: list[str],
                 links_only: bool = False) -> None:
    """Refuse what :func:`layout_problems` finds (``links_only``: what :func:`link_problems` does)."""
    run_dir, store_dir = Path(run_dir), Path(store_dir)
    problems = (link_problems(run_dir, store_dir, fingerprints) if links_only
                else layout_problems(run_dir, store_dir, fingerprints, step_links))
    if problems:
        raise RunDirError(
            f"the run directory {run_dir} cannot be used as it is:\n" + "\n".join(f"  - {p}" for p in problems),
            "these paths are curate's own: remove them as shown (steps are recomputed where needed) and run again",
        )


# Where in a step's store directory curate itself keeps files (besides its marker and kept.json):
# those it replaces whole by a rename, whatever stands there, and reads without waiting
# (curate.runfiles), so a link or a pipe in their place is recomputed over, not written through.
_RENAMED_INTO = ("data", "dropped", "shards", "uids")


def step_dir_problems(step_dir: Path, limit: int = 8) -> list[str]:
    """Entries under a step's store directory that a run would write through, at most ``limit``,
    each with its fix: a link, pipe or device in place of a folder, or anywhere under
    ``artifacts/``, where steps write their own files as they please (by name, not by rename).

    A step that is not complete runs in its directory as it finds it (a shard step keeps its
    finished shards, a download its finished parts): a link left there by whoever else could
    write to the store (a colleague's cache_dir, a run someone sent) had the run write into the
    file it leads to (the download step's worker.pid over a file of the user's, its log
    appended to another), and a pipe had it wait forever. Only ``lstat``s, through
    ``os.scandir``: nothing is opened or followed."""
    step_dir = Path(step_dir)
    problems: list[str] = []
    pending = [step_dir]
    while pending and len(problems) < limit:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            continue  # not there (a new step), or no folder: the run's own error names it
        for entry in entries:
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode):
                pending.append(Path(entry.path))
                continue
            ours = ((folder == step_dir and entry.name in (COMPLETE, KEPT_REFERENCE, INPUT_RECORD))
                    or (folder.parent == step_dir and folder.name in _RENAMED_INTO))
            if stat.S_ISREG(mode) or ours:
                continue
            kind = describe_mode(mode) + (f" to {os.readlink(entry.path)}" if stat.S_ISLNK(mode) else "")
            problems.append(f"{entry.path} is {kind} (remove it: rm '{entry.path}')")
            if len(problems) == limit:
                break
    return problems


def check_step_dir(step_dir: Path, label: str) -> None:
    """Refuse to run step ``label`` in a store directory holding what curate never writes there
    (:func:`step_dir_problems`), naming each entry and the fix."""
    problems = step_dir_problems(step_dir)
    if problems:
        raise RunDirError(
            f"step '{label}' cannot run in {step_dir}: it holds what curate never writes in a step's folder, "
            "and the step would write through it:\n" + "\n".join(f"  - {p}" for p in problems),
            f"remove these as shown, or the whole unfinished step (rm -r '{step_dir}'; it is computed again), and "
            "run again; something besides curate wrote into this store: check who can write to it",
        )


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    write_json_atomic(manifest, Path(run_dir) / MANIFEST)


# Why a complete step is not reused where its kept rows must be read: not a disagreement between
# its marker and its files (those are also said as a StoreWarning), just not stored.
NOT_STORED = "its kept rows were not stored (it ran fused with the steps after it)"


class StoreWarning(UserWarning):
    """A stored step or shard disagrees with its marker (a file rewritten, copied in from another
    run, or damaged): it is recomputed instead of reused."""


def cache_problem(step_dir: Path, needs_data: bool = True, sizes_only: bool = False,
                  before: dict[str, str] | None = None) -> str | None:
    """None when the step in ``step_dir`` is complete and its files hold what its marker says;
    else why it is not reusable. Every stored file (kept rows, dropped rows, uids, kept.json)
    must be there, none besides, each with the fingerprint recorded when it was written
    (``curate.shards.file_fingerprint``: one read of the step's files), every image file its rows
    point at in its folder with its recorded size (``curate.storedimages``), and row counts from
    the Parquet footers must match the marker's. A marker written before fingerprints is trusted on
    its row counts, as it was: recomputing every cached step of an existing store (model steps
    among them) on upgrading would cost more than it guards against.

    A step that ran fused with the steps after it (``curate.fusion``) stored its dropped rows
    only (its marker says ``kept_rows_stored: false``): it is reusable inside its group
    (``needs_data=False``), not where its kept rows must be read.

    A marker alone was trusted before: a step cut in half by a second run on the same store
    was published with its full count and reused by every later run; row counts alone, a shard
    rewritten with as many rows.

    ``sizes_only``: each stored file against its recorded size (one ``stat``), not its bytes: what
    ``curate inspect`` checks without ``--verify`` (curate.storecheck).

    ``before``: the steps before it in the store, label by fingerprint: the marker of the one it
    read must have the digest its own marker recorded (``input_digest``), else it ran on an input
    since recomputed with other rows (``curate.inputdigest``; a marker without one is trusted)."""
    step_dir = Path(step_dir)
    marker = step_dir / COMPLETE
    if not marker.exists():
        return "not complete"
    try:
        stats = read_json(marker)
        problem = step_marker_problem(stats)
        if problem:  # a marker curate did not write as it is: its step is recomputed, never believed
            return f"its marker {marker} is damaged: {problem}"
        kept_stored = stats.get("kept_rows_stored", True)
        if needs_data and not kept_stored:
            return NOT_STORED
        problem = input_problem(stats, step_dir, before)  # first: its files do not matter then
        if problem:
            return problem
        if "files" in stats:  # first: it names the file that differs
            problem = _stored_files_problem(step_dir, stats["files"], sizes_only)
            if problem:
                return problem
        problem = images_problem(step_dir, stats.get("images", {}))  # the images its rows point at
        if problem:
            return problem
        data, dropped = iter_shard_files(step_dir), list(iter_dropped_files(step_dir))
        if not kept_stored:
            data = []
            if (step_dir / KEPT_REFERENCE).exists():
                try:  # an older curate's (it held SQL) or a damaged one: recompute, never run it
                    read_reference(step_dir / KEPT_REFERENCE)
                except KeptReferenceError as error:
                    return str(error)
        elif len(data) != stats["shards"]:
            return f"its marker says {stats['shards']} shards, data/ has {len(data)}"
        rows = sum(parquet_rows(p) for p in data)
        if kept_stored and rows != stats["rows_out"]:
            return f"its marker says {stats['rows_out']} rows out, data/ holds {rows}"
        dropped_rows = sum(parquet_rows(p) for p in dropped)
        if dropped_rows != sum(stats.get("dropped", {}).values()):
            return f"its marker says {sum(stats['dropped'].values())} dropped rows, dropped/ holds {dropped_rows}"
    except Exception as exc:  # an unreadable marker or file: recompute rather than trust it
        return f"unreadable ({type(exc).__name__}: {exc})"
    return None


def _stored_files_problem(step_dir: Path, recorded: dict[str, str], sizes_only: bool = False) -> str | None:
    """The step's stored files against the fingerprints its marker recorded: which is missing,
    extra or different."""
    stored = [*iter_shard_files(step_dir), *iter_dropped_files(step_dir),
              *in_shard_order((step_dir / "uids").glob("shard-*.parquet"))]
    if (step_dir / KEPT_REFERENCE).exists():
        stored.append(step_dir / KEPT_REFERENCE)
    missing = sorted(set(recorded) - {relative(path, step_dir) for path in stored})
    if missing:
        return f"{step_dir / missing[0]}, which its marker recorded, is missing"
    return files_problem(step_dir, recorded, stored, sizes_only)


def reopen_shards(step_dir: Path) -> None:
    """Forget which of ``step_dir``'s shards are finished (their markers), keeping their files, so
    the step's next run computes every shard again."""
    for marker in (step_dir / "shards").glob("*.json"):
        marker.unlink()


def link_step(run_dir: Path, dirname: str, target: Path) -> None:
    steps = run_dir / "steps"
    steps.mkdir(parents=True, exist_ok=True)
    link = steps / dirname
    for stale in steps.glob(dirname.split("_", 1)[0] + "_*"):
        if stale.is_symlink() or stale.is_file():
            stale.unlink()
    try:
        os.symlink(os.path.relpath(target, steps), link)
    except OSError:  # filesystems without symlinks: a pointer file does the same job
        link.write_text(str(target))


def write_views(run_dir: Path, manifest: dict[str, Any]) -> Path:
    """(Re)create curate.duckdb with a view per step, per step's drops, and a lineage view."""
    from curate.duck import default_cursor, literal, quote

    db_path = Path(run_dir) / DATABASE
    # Swept: a full disk failed DuckDB's checkpoint, which left the temporary's log (.tmp.wal).
    with atomic_path(db_path, sweep=True) as tmp, _log_removed_on_failure(tmp):
        tmp.unlink(missing_ok=True)  # a leftover of this pid would be opened, not replaced
        # Attached to a cursor of the process's default in-memory database: opening the file as a
        # database of its own started a DuckDB instance, ~15 ms of CPU at the end of every run.
        # The alias is this call's own (ATTACH is seen by every cursor of that database).
        alias = f"views_{uuid.uuid4().hex}"
        con = default_cursor()
        try:
            home = con.sql("SELECT current_database()").fetchall()[0][0]
            con.execute(f"ATTACH {literal(str(tmp))} AS {alias}")
            try:
                con.execute(f"USE {alias}")
                _create_views(con, manifest)
            finally:
                con.execute(f"USE {quote(home)}")  # DuckDB detaches no database that is in use
                con.execute(f"DETACH {alias}")
        finally:
            con.close()
    return db_path


@contextlib.contextmanager
def _log_removed_on_failure(database: Path) -> Iterator[None]:
    """Remove DuckDB's write-ahead log of ``database`` (``<name>.wal``) when the block raises."""
    try:
        yield
    except BaseException:
        database.with_name(database.name + ".wal").unlink(missing_ok=True)
        raise


def kept_relation(manifest: dict[str, Any], record: dict[str, Any], step_dir_of: Any = None,
                  confine: Any = None) -> str | None:
    """DuckDB SQL for the rows a finished step kept, wherever they are (None: nowhere to read);
    :func:`curate.steprows.kept_rows` says where, and what ``step_dir_of`` and ``confine`` do."""
    from curate.steprows import kept_rows

    rows = kept_rows(manifest, record, step_dir_of, confine)
    return None if rows is None else rows.sql()


def _create_views(con, manifest: dict[str, Any]) -> None:
    from curate.duck import literal, quote
    from curate.schema import DROP_REASON, DUPLICATE_OF
    from curate.steprows import finished_steps

    lineage_parts = []
    steps = finished_steps(manifest)
    for step in steps:
        if step.kept is not None:
            con.execute(f"CREATE VIEW {quote(step.name)} AS SELECT * FROM {step.kept.sql()}")
        if step.dropped:
            con.execute(f"CREATE VIEW {quote(step.name + '_dropped')} AS SELECT * FROM {step.dropped_sql()}")
        if step.in_lineage:
            duplicate = DUPLICATE_OF if DUPLICATE_OF in step.dropped_columns else "NULL::VARCHAR"
            lineage_parts.append(
                f"SELECT uid, {step.index} AS step_index, {literal(step.label)} AS step, "
                f"{DROP_REASON} AS reason, {duplicate} AS duplicate_of FROM {quote(step.name + '_dropped')}"
            )
    if lineage_parts:
        con.execute("CREATE VIEW lineage AS " + " UNION ALL ".join(lineage_parts))
    if steps:
        con.execute(f"CREATE VIEW final AS SELECT * FROM {quote(steps[-1].name)}")


def funnel(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows per step with drop reasons and timings, for ``curate inspect``, ``run --json`` and the report."""
    rows = []
    for record in manifest.get("steps", []):
        rows.append({
            "index": record["index"],
            "label": record["label"],
            "step": record["step"],
            "plugin": record.get("plugin"),
            "rows_in": record.get("rows_in"),
            "rows_out": record.get("rows_out"),
            "dropped": record.get("dropped", {}),
            "seconds": record.get("seconds"),
            "cached": record.get("cached", False),
            "complete": record.get("complete", False),
        })
    return rows
