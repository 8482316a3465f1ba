"""Planning: resolve plugins, read the source schema, push the schema through every step and
check each step's declared columns — all before any row is processed.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl

from curate.diskspace import min_free_bytes
from curate.errors import CurateError, SpecError
from curate.fingerprint import fingerprint
from curate.images import untrusted_image_folders
from curate.ingest import canonical_schema, carried_columns, in_place_reference, shard_bytes_problem
from curate.keptref import KeptReferenceError, read_reference
from curate.plugins import PluginManager
from curate.lock import LOCK_NAME
from curate.remote import is_url
from curate.runfiles import (
    confined,
    holds_a_run,
    outside_working_directory,
    pattern_characters,
    read_as_pattern,
    real_folders,
    real_paths,
    where_outside,
)
from curate.inputdigest import StepInput, step_digest
from curate.runstore import MANIFEST, RUN_DIR_FILES, RUN_DIR_FOLDERS, cache_problem, check_layout
from curate.shards import KEPT_REFERENCE
from curate.schema import ENGINE_COLUMNS, UID, Schema, case_clashes, compatible, describe, dtype_name
from curate.sink import Sink, SinkContext
from curate.source import Source, SourceContext
from curate.spec import LoadedSpec
from curate.step import Step
from curate.suggest import did_you_mean
from curate.untrusted import UNTRUSTED, place_problems, remote_problem
from curate.validation import Resolved, resolve


@dataclass
class PlannedStep:
    index: int  # 0 is the source
    label: str
    kind: str  # the step's registered name, or "source:<format>"
    step: Step | None  # None for the source
    input_schema: Schema
    output_schema: Schema
    fingerprint: str
    plugin: str | None
    plugin_version: str
    params: dict[str, Any]
    cached: bool = False
    # (first, last) step index of the fused group this step runs in (curate.fusion); a step that
    # runs alone is its own group.
    group: tuple[int, int] = (0, 0)

    @property
    def fused(self) -> bool:
        return self.group[0] != self.group[1]

    @property
    def stores_kept_rows(self) -> bool:
        """False for a fused step before its group's last: its kept rows stay in memory."""
        return self.index == self.group[1]

    @property
    def dirname(self) -> str:
        return f"{self.index:02d}_{self.label}"

    def writes(self) -> Schema:
        return {k: v for k, v in self.output_schema.items() if k not in self.input_schema}


@dataclass
class PlannedOutput:
    index: int
    sink: Sink
    step_label: str
    path: str


@dataclass
class Plan:
    loaded: LoadedSpec
    resolved: Resolved
    source: Source
    run_dir: Path
    store_dir: Path
    steps: list[PlannedStep] = field(default_factory=list)  # steps[0] is the source
    outputs: list[PlannedOutput] = field(default_factory=list)

    @property
    def spec(self):
        return self.loaded.spec

    def step_dir(self, planned: PlannedStep) -> Path:
        return self.store_dir / planned.fingerprint

    def by_label(self, label: str) -> PlannedStep:
        for planned in self.steps:
            if planned.label == label:
                return planned
        labels = [p.label for p in self.steps]
        from curate.errors import UsageError

        raise UsageError(f"no step labelled '{label}' in this spec",
                         did_you_mean(label, labels, f"labels: {', '.join(labels)}"))

    def group_of(self, planned: PlannedStep) -> list[PlannedStep]:
        """The steps of ``planned``'s fused group, in order (just ``planned`` when it runs alone)."""
        first, last = planned.group
        return self.steps[first:last + 1]

    def before(self, planned: PlannedStep) -> dict[str, str]:
        """The steps before ``planned``, label by fingerprint: those whose output it may have read."""
        return {p.fingerprint: p.label for p in self.steps[:planned.index]}

    def input_of(self, first: PlannedStep) -> StepInput | None:
        """What ``first`` (a step, or the first of a fused group's steps to compute) reads from
        the store: the step before it and its marker's digest now (curate.inputdigest); None for
        the source, or a step before it without a readable marker (not finished)."""
        if first.index == 0:
            return None
        before = self.steps[first.index - 1]
        digest = step_digest(self.step_dir(before))
        return None if digest is None else StepInput(before.label, before.fingerprint, digest)

    def cache_problem(self, planned: PlannedStep) -> str | None:
        problem = cache_problem(self.step_dir(planned), needs_data=planned.stores_kept_rows,
                                before=self.before(planned))
        if problem is None and planned.step is None:
            problem = self._reference_problem(planned)
        return problem

    def _reference_problem(self, planned: PlannedStep) -> str | None:
        """A source that stored, instead of its rows, a ``kept.json`` naming the files it read
        where they lie: the files and columns must be those this run's source reads. Its marker
        fingerprints the reference, but a store copied in from elsewhere (a shared
        ``run.cache_dir``) names whatever its writer chose, and the run's views and report
        would read those files as this source's rows."""
        path = self.step_dir(planned) / KEPT_REFERENCE
        if not path.exists():
            return None
        try:
            found = read_reference(path)
            expected = self._source_reference
        except (KeptReferenceError, OSError, pl.exceptions.PolarsError) as error:
            return f"its {KEPT_REFERENCE} cannot be checked against the source ({error})"
        if found.versions is None and expected is not None:  # written before versions: compared as before
            expected = replace(expected, versions=None)
        if found != expected:
            return f"its {KEPT_REFERENCE} names other files or columns than this run's source reads"
        return None

    @cached_property
    def _source_reference(self) -> Any:
        """What this run's source would write as its ``kept.json`` (its files' footers read once
        per plan, not once per cache check)."""
        return in_place_reference(self.source, self.spec.source, self.steps[0].output_schema)

    def reusable_head(self, planned: PlannedStep) -> bool:
        """The head of a group (the source or a table step, curate.fusion.fusable_head) that
        stored its kept rows, having run alone in an earlier run: it is reused whatever its
        followers, which read those rows (curate.engine)."""
        return (planned.fused and planned.index == planned.group[0]
                and (planned.step is None or planned.step.scope == "table")
                and cache_problem(self.step_dir(planned), before=self.before(planned)) is None)

    def check_layout(self) -> None:
        """Refuse entries of the run directory or the store of the wrong kind (a RunDirError naming
        each and its fix): ``curate run`` before it takes its locks, ``curate validate`` too, which
        only looks (curate.runstore.layout_problems)."""
        check_layout(self.run_dir, self.store_dir, [p.fingerprint for p in self.steps],
                     [p.dirname for p in self.steps])

    def refresh_cache_status(self) -> None:
        # A fused group is one cache unit: each of its steps is cached when all of them are
        # (or, for a head, when it stored its kept rows). Each step's store is checked once: the
        # check reads every stored file (their fingerprints), and a group of n steps asked it n² times.
        reusable = {planned.index: self.cache_problem(planned) is None for planned in self.steps}
        for planned in self.steps:
            planned.cached = (all(reusable[p.index] for p in self.group_of(planned))
                              or self.reusable_head(planned))


def run_dir_for(loaded: LoadedSpec, override: str | Path | None = None) -> Path:
    """``run.dir`` (or ``--run-dir``), relative to the working directory, where ``curate run
    specs/quickstart.yaml`` from the repository root has always written ``runs/quickstart``.
    (``source.path`` is relative to the spec file's directory instead.)"""
    if override is not None:
        return Path(override).expanduser().resolve()
    return Path(loaded.spec.run.dir.replace("{name}", loaded.spec.name)).expanduser().resolve()


# Directories a run must never be (a run writes and replaces files there) or be inside of.
SYSTEM_DIRS = ("/", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/boot", "/dev", "/proc",
               "/sys", "/var", "/opt", "/root", "/home", "/tmp", "/srv", "/mnt", "/media", "/run")
SYSTEM_TREES = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/boot", "/dev", "/proc", "/sys")


def run_dir_problems(loaded: LoadedSpec, override: str | Path | None, run_path: Path) -> list[tuple]:
    """Refuse a spec's run.dir or cache_dir that leaves the working directory with '..', and any run
    directory (also one given with --run-dir) that is a system directory."""
    out: list[tuple] = []
    checks: list[tuple[tuple, str, Path, bool]] = [
        (("run", "dir"), str(override) if override is not None else loaded.spec.run.dir, run_path, override is None)
    ]
    if loaded.spec.run.cache_dir:
        cache = loaded.spec.run.cache_dir
        checks.append((("run", "cache_dir"), cache, Path(cache).expanduser().resolve(), True))
    home = Path.home().resolve()
    system = {Path(d) for d in SYSTEM_DIRS} | {home, *home.parents}
    for loc, raw, resolved, from_spec in checks:
        if from_spec and loaded.spec.run.untrusted and (Path(raw).is_absolute() or raw.startswith("~")):
            out.append((loc, f"'{raw}' is outside the working directory, and the spec is untrusted (run.untrusted / "
                        "--untrusted)", "give a relative path, or choose the directory yourself with --run-dir"))
        elif (from_spec and loaded.spec.run.untrusted and ".." not in Path(raw).parts
              and (where := where_outside(raw))):
            # a link the spec's bundle brought along: the run would write there
            out.append((loc, f"'{raw}' is {where}, and {UNTRUSTED}",
                        "give a relative path that is no link, or choose the directory yourself with --run-dir"))
        if from_spec and not Path(raw).expanduser().is_absolute() and ".." in Path(raw).parts:
            out.append((loc, f"'{raw}' leaves the working directory ('..')",
                        "use a path inside the working directory, or an absolute path to put it elsewhere"))
        if (why := read_as_pattern(resolved)) is not None:
            out.append((loc, f"'{raw}' is {why}: the run would read them as its own",
                        "give it a folder whose path has no *, ? or [ (rename the folders above it, or choose "
                        "another with --run-dir)"))
        if resolved in system or any(resolved.is_relative_to(tree) for tree in SYSTEM_TREES):
            out.append((loc, f"'{raw}' is {resolved}, a system directory",
                        "give the run a directory of its own, e.g. runs/{name}"))
        elif (resolved.exists() or resolved.is_symlink()) and not resolved.is_dir():
            out.append((loc, f"'{raw}' is {resolved}, a file, not a folder",
                        "give the run a folder of its own, e.g. runs/{name}, or move the file away"))
    foreign = _not_a_run(run_path)
    if foreign:
        raw = str(override) if override is not None else loaded.spec.run.dir
        shown = ", ".join(foreign[:8]) + (f", … ({len(foreign)} entries)" if len(foreign) > 8 else "")
        out.append((("run", "dir"), f"'{raw}' is {run_path}, a folder that holds files but no curate run "
                    f"(no {MANIFEST} or store/): {shown}; a run writes spec.yaml, manifest.json, report.html… there",
                    "give the run a folder of its own, e.g. runs/{name}, or empty this one"))
    elif _overwrites_spec_file(loaded, run_path):
        out.append((("run", "dir"), f"the spec file {loaded.origin} is in the run directory {run_path}, where the "
                    f"run writes its own {loaded.origin.name}", "give the run a folder of its own, e.g. runs/{name}, "
                    "or rename the spec file"))
    return out


def _overwrites_spec_file(loaded: LoadedSpec, run_path: Path) -> bool:
    """Whether the run would write over the spec file itself (not the copy a run saved there,
    which it rewrites unchanged)."""
    origin = loaded.origin
    if origin is None or origin.name not in RUN_DIR_FILES + RUN_DIR_FOLDERS or origin.resolve().parent != run_path:
        return False
    try:
        return origin.read_text(encoding="utf-8") != loaded.spec.dump_yaml()
    except (OSError, UnicodeDecodeError):
        return True


def _not_a_run(run_path: Path) -> list[str]:
    """The entries of ``run_path`` when it is a folder holding something but no curate run (a run
    writes and replaces files with fixed names there: a user's own spec.yaml or report.html was
    overwritten); else []. A damaged run still counts, so a re-run repairs it."""
    if not run_path.is_dir():
        return []
    try:
        entries = sorted(p.name for p in run_path.iterdir())
    except OSError:
        return []
    if (run_path / "store").is_dir() or set(entries) <= {LOCK_NAME, "tmp"} or holds_a_run(run_path):
        return []
    return entries


def output_path_problem(output_path: str, run_path: Path, untrusted: bool = False) -> str | None:
    """A relative output path must stay inside the run directory (an absolute one, or a URL such as
    ``s3://bucket/prefix``, is explicit). A spec from someone else (``run.untrusted``) writes only
    inside its run directory: its absolute path could name any file the user may write (its URL is
    for :func:`curate.untrusted.remote_problem`: allowed only under an ``--allow-remote`` prefix)."""
    from curate.remote import is_url

    if untrusted and not is_url(output_path) and (Path(output_path).expanduser().is_absolute()
                                                  or output_path.startswith("~")):
        return (f"'{output_path}' is outside the run directory, and the spec is untrusted (run.untrusted / "
                "--untrusted): its outputs are written only inside the run directory")
    if is_url(output_path):
        return None
    path = Path(output_path).expanduser()
    if path.is_absolute():
        return None
    if not (run_path / path).resolve().is_relative_to(run_path):
        return f"'{output_path}' leaves the run directory; relative output paths are inside the run directory"
    return None


def output_target_problems(outputs: list[PlannedOutput], run_path: Path, store: Path,
                           untrusted: bool = False) -> list[tuple]:
    """Outputs that would overwrite what they must not: curate's own files in the run directory or
    the store, the run directory itself, a folder where one file goes, a device (a sink writes
    aside and renames over it, so /dev/full became a regular file), a path under a file, or
    another output's path (one of the two was silently lost)."""
    from curate.remote import is_url
    from curate.runstore import RUN_DIR_FILES, RUN_DIR_FOLDERS

    out: list[tuple] = []
    seen: list[tuple[int, str, Path | None]] = []  # outputs with no problem of their own
    for output in outputs:
        loc, raw, kind = ("outputs", output.index, "path"), output.path, output.sink.path_kind
        if is_url(raw):
            key, target = raw.rstrip("/"), None
        else:
            if output_path_problem(raw, run_path, untrusted):
                continue  # leaves the run directory: already reported
            target = output.sink.ctx.resolve(raw).resolve()
            key = str(target)
            problem = _target_problem(raw, target, kind, run_path, store, RUN_DIR_FILES, RUN_DIR_FOLDERS)
            if problem is not None:
                out.append((loc, *problem))
                continue
        for other_index, other_key, other_target in seen:
            if key == other_key:
                out.append((loc, f"'{raw}' is also the path of outputs[{other_index}]: one would overwrite the other",
                            "give each output a path of its own"))
                break
            if target is not None and other_target is not None and (
                    target.is_relative_to(other_target) or other_target.is_relative_to(target)):
                out.append((loc, f"'{raw}' and the path of outputs[{other_index}] are one inside the other",
                            "give each output a path of its own, side by side"))
                break
        else:
            seen.append((output.index, key, target))
    return out


def source_overlap_problems(outputs: list[PlannedOutput], source: Source | None, run_path: Path,
                            store: Path) -> list[tuple]:
    """Outputs that would write over what the source reads: one of its files (a filtered table
    written over its own input, or a folder output holding it), a file inside the folder it lists,
    or one its pattern matches (the next run would read the output as data). Outputs in the run
    directory or the store are fine: a source does not read curate's own folders."""
    files_of, raw_source = getattr(source, "files", None), getattr(getattr(source, "ctx", None), "path", None)
    if source is None or files_of is None or not raw_source:
        return []
    if is_url(raw_source):
        return _remote_overlap_problems(outputs, raw_source)
    try:
        files = real_paths(files_of())
    except (CurateError, OSError):
        return []  # the source's own problem, reported with the source
    root = source.ctx.resolve(raw_source)
    pattern = os.path.realpath(root.parent) + os.sep + root.name if pattern_characters(raw_source) else None
    folder = Path(os.path.realpath(root)) if pattern is None and root.is_dir() else None
    hint = "write the output outside the source's files and folder (a relative path goes inside the run directory)"
    out: list[tuple] = []
    for output in outputs:
        raw = output.path
        if is_url(raw) or output_path_problem(raw, run_path):
            continue
        target = Path(os.path.realpath(output.sink.ctx.resolve(raw)))
        if any(target.is_relative_to(os.path.realpath(own)) for own in (run_path, store)):
            continue
        inside = str(target).rstrip(os.sep) + os.sep  # real paths: a prefix of the text is a folder above
        held = min((Path(f) for f in files if f == str(target) or f.startswith(inside)), default=None)
        if held is not None:
            what = "is" if held == target else "holds"
            out.append((("outputs", output.index, "path"),
                        f"'{raw}' {what} the source's file {held}: the run would write over the data it reads", hint))
        elif folder is not None and target.is_relative_to(folder):
            out.append((("outputs", output.index, "path"),
                        f"'{raw}' is inside the source's folder {folder}: the next run would read it as source data",
                        hint))
        elif pattern is not None and fnmatch.fnmatch(str(target), pattern):
            out.append((("outputs", output.index, "path"),
                        f"'{raw}' matches source.path {raw_source!r}: the next run would read it as source data",
                        hint))
    return out


def _remote_overlap_problems(outputs: list[PlannedOutput], raw_source: str) -> list[tuple]:
    """:func:`source_overlap_problems` for a source in object storage: an output URL that is the
    source's object, lies under its prefix or matches its pattern."""
    source = raw_source.rstrip("/")
    out: list[tuple] = []
    for output in outputs:
        if not is_url(output.path):
            continue
        key = output.path.rstrip("/")
        if pattern_characters(source):
            overlaps = fnmatch.fnmatch(key, source)
        else:
            overlaps = key == source or key.startswith(source + "/") or source.startswith(key + "/")
        if overlaps:
            out.append((("outputs", output.index, "path"),
                        f"'{output.path}' is, holds or lies among the source's objects ({raw_source}): the run would "
                        "write over the data it reads, or the next run would read the output as data",
                        "write the output under another prefix"))
    return out


def _target_problem(raw: str, target: Path, kind: str | None, run_path: Path, store: Path,
                    files: tuple[str, ...], folders: tuple[str, ...]) -> tuple[str, str] | None:
    import stat

    rename = "give the output a name of its own, e.g. out.parquet"
    if target == run_path or run_path.is_relative_to(target):
        what = "is the run directory" if target == run_path else "holds the run directory"
        return f"'{raw}' {what} ({run_path}), where curate keeps the run's own files", rename
    if target == store or target.is_relative_to(store) or store.is_relative_to(target):
        where = "is" if target == store else ("is inside" if target.is_relative_to(store) else "holds")
        return f"'{raw}' {where} the step store ({store}), where curate keeps every step's rows", rename
    if target.is_relative_to(run_path):
        first = target.relative_to(run_path).parts[0]
        if first in files or first in folders:
            where = "is" if len(target.relative_to(run_path).parts) == 1 else "is inside"
            return (f"'{raw}' {where} curate's own '{first}' in the run directory; the run would overwrite it "
                    f"(reserved: {', '.join(files + folders)})", rename)
    for parent in target.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                return f"'{raw}' is under {parent}, which is a file, not a folder", "point the output at a folder"
            break
    try:
        mode = target.stat().st_mode
    except OSError:
        return None  # not there yet
    if stat.S_ISDIR(mode):
        if kind == "file":
            return (f"'{raw}' is an existing folder ({target}); this output writes one file",
                    f"give it a file name, e.g. {raw.rstrip('/') or '.'}/out.parquet, or remove the folder")
        return None
    if not stat.S_ISREG(mode):
        return (f"'{raw}' is {target}, not a regular file (a device, pipe or socket); the output would replace it",
                "write the output to a regular file")
    if kind == "folder":
        return (f"'{raw}' is an existing file ({target}); this output writes a folder",
                "point it at a new or empty folder")
    return None


def make_plan(loaded: LoadedSpec, pm: PluginManager, run_dir: str | Path | None = None,
              allow_remote: tuple[str, ...] = ()) -> Plan:
    """Build the plan or raise one SpecError with every problem found. ``allow_remote``: the
    storage URL prefixes the user lets a spec run with ``--untrusted`` read and write
    (``--allow-remote``; curate.untrusted)."""
    spec = loaded.spec
    resolved = resolve(loaded, pm)
    problems = resolved.problems
    assert problems is not None
    run_path = run_dir_for(loaded, run_dir)
    for loc, message, hint in run_dir_problems(loaded, run_dir, run_path):
        problems.add(loc, message, hint)
    store = Path(spec.run.cache_dir).resolve() if spec.run.cache_dir else run_path / "store"
    # Before the source is planned: a bucket source copies what it reads into RUN_DIR/tmp already.
    check_layout(run_path, store, [], [], links_only=True)

    source, schema, source_fp = _plan_source(loaded, resolved, run_path, store, allow_remote)
    plan_steps: list[PlannedStep] = []
    if source is not None and schema is not None:
        plan_steps.append(_source_step(source, schema, source_fp, pm))
    plan_steps += _plan_steps(loaded, resolved, pm, schema, source_fp, upstream=list(plan_steps),
                              allow_remote=allow_remote)
    outputs = _plan_outputs(loaded, resolved, pm, run_path, store, plan_steps, allow_remote)
    if spec.run.untrusted and resolved.executor is not None:
        for loc, message, hint in place_problems(resolved.executor.params.places(), ("run", "executor", "params"),
                                                 allow_remote):
            problems.add(loc, message, hint)
    for loc, message, hint in output_target_problems(outputs, run_path, store, spec.run.untrusted):
        problems.add(loc, message, hint)
    for loc, message, hint in source_overlap_problems(outputs, source, run_path, store):
        problems.add(loc, message, hint)
    # A head's followers run on threads of this process, whatever the executor: only where the
    # executor runs shard steps here too (local) does a group start at the source or a table step.
    _fuse_groups(plan_steps, {o.step_label for o in outputs}, enabled=spec.run.fuse,
                 heads=spec.run.fuse_heads and spec.run.executor.name == "local")

    problems.raise_if_any()
    assert source is not None
    # Which steps are cached is left to plan_rows (`curate plan`): a run decides per step as it
    # goes, and `validate` never asks, so reading every stored step's Parquet footers here was
    # work that `curate run` did twice and `curate validate` for nothing.
    return Plan(loaded, resolved, source, run_path, store, plan_steps, outputs)


def _plan_source(loaded: LoadedSpec, resolved: Resolved, run_path: Path, store: Path,
                 allow_remote: tuple[str, ...] = ()) -> tuple[Source | None, Schema | None, str]:
    """The source, its canonical schema and its fingerprint; problems go to ``resolved.problems``
    (the schema is None when the source cannot say it, or an untrusted spec's source may not be read)."""
    spec = loaded.spec
    problems = resolved.problems
    assert problems is not None
    if resolved.source_cls is None or resolved.source_params is None:
        return None, None, ""
    ctx = SourceContext(run_dir=run_path, spec_dir=loaded.directory, seed=spec.run.seed, path=spec.source.path,
                        untrusted=spec.run.untrusted, store=store,
                        min_free_disk=min_free_bytes(spec.run.min_free_disk, spec.run.untrusted),
                        carried=carried_columns(spec.source))
    raw = spec.source.path
    if spec.run.untrusted and raw and not is_url(raw) and _names_outside(raw):
        # a spec from someone else reads no file of this machine it names by where it lies (its
        # rows reach the outputs, and a download step could send them to any host the spec names);
        # an absolute path inside the working directory is fine (a run's saved spec has those)
        problems.add(("source", "path"), outside_working_directory(raw) or f"{raw!r} is outside the working directory")
        return None, None, ""
    if spec.run.untrusted:
        refused = place_problems(resolved.source_params.places(), ("source", "params"), allow_remote,
                                 base=loaded.directory)
        if raw and is_url(raw) and (remote := remote_problem(raw, allow_remote)):
            refused.append((("source", "path"), *remote))
        for loc, message, hint in refused:
            problems.add(loc, message, hint)
        if refused:  # nothing of it is read (or written: a world source generates its world in its dir)
            return None, None, ""
    source = resolved.source_cls(resolved.source_params, ctx)
    try:
        raw_schema = source.schema()
        schema, mapping_problems = canonical_schema(raw_schema, spec.source)
        for loc, message, hint in mapping_problems:
            problems.add(loc, message, hint)
        # local files only: a bucket's objects are fetched by the run, not by validation
        if not (raw and is_url(raw)) and (too_big := shard_bytes_problem(source, spec.run.shard_size)) is not None:
            problems.add(("run", "shard_size"), *too_big)
        source_fp = fingerprint(
            kind="source",
            source=source.fingerprint(),
            columns=spec.source.columns,
            keep=spec.source.keep,
            uid=spec.source.uid_columns,
            shard_size=spec.run.shard_size,
        )
    except CurateError as exc:
        problems.add(("source",), exc.message, exc.hint)
        return source, None, ""
    return source, schema, source_fp


def _names_outside(raw: str) -> bool:
    """Whether an untrusted spec's ``source.path`` names a place outside the working directory by
    itself: ``~``, ``..``, or an absolute path elsewhere (links and relative paths resolved against
    the spec's folder are the file source's to check, file by file)."""
    path = Path(raw)
    if raw.startswith("~") or ".." in path.parts:
        return True
    return path.is_absolute() and confined(path, real_folders([os.getcwd()])) is None


def _source_step(source: Source, schema: Schema, source_fp: str, pm: PluginManager) -> PlannedStep:
    return PlannedStep(
        index=0,
        label="source",
        kind=f"source:{source.format}",
        step=None,
        input_schema={},
        output_schema=schema,
        fingerprint=source_fp,
        plugin=pm.sources.owners.get(source.format),
        plugin_version=pm.version_of("source", source.format),
        params=source.describe(),
    )


def _plan_steps(loaded: LoadedSpec, resolved: Resolved, pm: PluginManager, schema: Schema | None,
                upstream_fp: str, upstream: list[PlannedStep],
                allow_remote: tuple[str, ...] = ()) -> list[PlannedStep]:
    """Push the schema through every step, checking each; returns the planned steps (not the source).
    A step of an untrusted spec that names a place it may not (curate.untrusted) is not checked
    further: its checks and fingerprint would read that place."""
    spec = loaded.spec
    problems = resolved.problems
    assert problems is not None
    plan_steps: list[PlannedStep] = []
    for index, (step_spec, step) in enumerate(zip(spec.steps, resolved.steps)):
        loc = ("steps", index)
        refused = place_problems(step.places(), loc + ("params",), allow_remote) \
            if spec.run.untrusted and step is not None else []
        for place_loc, message, hint in refused:  # whatever the schema: they need none
            problems.add(place_loc, message, hint)
        if schema is None:
            if step is not None and not refused:
                try:
                    for message in step.plan_check_params():
                        problems.add(loc + ("params",), message)
                except CurateError as exc:
                    problems.add(loc + ("params",), exc.message, exc.hint)
            continue
        if step is None:
            schema = _schema_after_unresolved(loaded, resolved, pm, index, step_spec, schema)
            continue
        step_problems = check_columns(step, schema)
        for message, hint in step_problems:
            problems.add(loc + ("step",), message, hint)
        if not refused:
            before = [p.step for p in (*upstream, *plan_steps) if p.step is not None]
            _plan_checks(step, schema, before, loc, problems)
        if step_problems or refused:
            try:  # keep checking downstream steps against the schema this one would produce
                schema = step.output_schema(schema)
            except Exception:
                schema = None
            continue
        output_schema = step.output_schema(schema)
        _reserved_column_problems(output_schema, loc, problems, schema)
        planned = _planned_step(index, step, schema, output_schema, upstream_fp, spec.run.seed, pm)
        plan_steps.append(planned)
        upstream_fp = planned.fingerprint
        schema = output_schema
    return plan_steps


def _schema_after_unresolved(loaded: LoadedSpec, resolved: Resolved, pm: PluginManager, index: int,
                             step_spec: Any, schema: Schema) -> Schema | None:
    """The schema after a step that did not resolve, so later steps are still checked: a name with
    a close match ('filtr') is that step mistyped, and a known step with bad params most likely
    still writes its declared columns; after an unknown step the schema is anyone's guess (None)."""
    cls = resolved.step_classes[index] if index < len(resolved.step_classes) else None
    if cls is None and ("steps", index) not in loaded.invalid:
        close = pm.steps.suggest(step_spec.step)
        cls = pm.steps.classes.get(close) if close and close not in pm.steps.clashes else None
    return {**schema, **cls.writes} if cls is not None else None


def _plan_checks(step: Step, schema: Schema, upstream: list[Step], loc: tuple, problems: Any) -> None:
    try:
        for message in step.plan_check(schema) + step.plan_check_upstream(upstream):
            problems.add(loc + ("params",), message)
    except CurateError as exc:
        problems.add(loc + ("params",), exc.message, exc.hint)


def _reserved_column_problems(output_schema: Schema, loc: tuple, problems: Any,
                              input_schema: Schema) -> None:
    if UID not in output_schema:
        problems.add(loc + ("params",), "the step's output would lose the 'uid' column", "keep uid")
    for first, second in case_clashes(output_schema):
        problems.add(loc + ("params",), f"the step's output would have columns '{first}' and '{second}', which "
                     "differ only by case; DuckDB treats them as one", "rename one of them")
    for reserved in (c for c in output_schema if c in ENGINE_COLUMNS):
        # The engine reads these to split off dropped rows; as a data column (a rename or an
        # sql alias) it failed only at run time, blaming the plugin.
        problems.add(loc + ("params",), f"the step's output would have a column '{reserved}', which curate "
                     "reserves for dropped rows", "name it differently; to drop rows use a filter step")
    new = [c for c in output_schema if c not in input_schema]  # said once, where the column appears
    for reserved in (c for c in new if c.startswith("_") and c not in ENGINE_COLUMNS):
        # as the source refuses them: steps name their working columns so (a table step's
        # input view adds _shard and _row), and a data column of that name broke the next one
        problems.add(loc + ("params",), f"the step's output would have a column '{reserved}': names starting "
                     "with '_' are curate's own", "name it without the leading '_'")
    for blank in (c for c in new if not c.strip()):
        problems.add(loc + ("params",), f"the step's output would have a column named {blank!r}, which SQL "
                     "cannot name", "give it a name")


def _planned_step(index: int, step: Step, schema: Schema, output_schema: Schema, upstream_fp: str,
                  seed: int, pm: PluginManager) -> PlannedStep:
    version = pm.version_of("step", step.name)
    step_fp = fingerprint(
        kind="step",
        step=step.name,
        step_version=step.version,
        plugin_version=version,
        params=step.params.fingerprint_dict(),
        extra=step.fingerprint_extra(),
        input=upstream_fp,
        seed=seed if step.random else None,
    )
    return PlannedStep(
        index=index + 1,
        label=step.label,
        kind=step.name,
        step=step,
        input_schema=schema,
        output_schema=output_schema,
        fingerprint=step_fp,
        plugin=pm.steps.owners.get(step.name),
        plugin_version=version,
        params=step.params.model_dump(mode="json"),
    )


def _plan_outputs(loaded: LoadedSpec, resolved: Resolved, pm: PluginManager, run_path: Path, store: Path,
                  plan_steps: list[PlannedStep], allow_remote: tuple[str, ...] = ()) -> list[PlannedOutput]:
    """One sink per output; checks its path stays in the run directory (an untrusted spec's URL:
    under an ``--allow-remote`` prefix; its params' places: in the working or run directory) and
    its columns exist. An untrusted spec's sinks read the images its rows name only from the
    working directory, the run directory and its ``store`` (``SinkContext.image_folders``)."""
    spec = loaded.spec
    problems = resolved.problems
    assert problems is not None
    outputs: list[PlannedOutput] = []
    sink_iter = iter(resolved.sinks)
    for index, output_spec in enumerate(spec.outputs):
        if spec.run.untrusted and is_url(output_spec.path):
            remote = remote_problem(output_spec.path, allow_remote)
            if remote is not None:
                problems.add(("outputs", index, "path"), *remote)
        escape = output_path_problem(output_spec.path, run_path, spec.run.untrusted)
        if escape:
            problems.add(("outputs", index, "path"), escape,
                         "give a relative path (inside the run directory)" if spec.run.untrusted
                         else "write it inside the run directory, or give an absolute path")
        sink_cls = pm.sinks.get(output_spec.format)
        if sink_cls is None:
            continue
        pair = next(sink_iter, None)
        if pair is None:
            break
        cls, params = pair
        if spec.run.untrusted:  # relative to the run directory, where the sink resolves them
            for loc, message, hint in place_problems(params.places(), ("outputs", index, "params"), allow_remote,
                                                     base=run_path, also=[run_path]):
                problems.add(loc, message, hint)
        label = output_spec.step or (plan_steps[-1].label if plan_steps else "source")
        ctx = SinkContext(
            run_dir=run_path, spec_dir=loaded.directory, seed=spec.run.seed, label=label, path=output_spec.path,
            image_folders=untrusted_image_folders(run_path, store) if spec.run.untrusted else None,
        )
        sink = cls(params, ctx)
        upstream = next((p for p in plan_steps if p.label == label), None)
        if upstream is not None:
            for name in sink.input_columns():
                if name not in upstream.output_schema:
                    available = ", ".join(upstream.output_schema)
                    hint = did_you_mean(name, upstream.output_schema, f"available: {available}")
                    problems.add(("outputs", index, "format"), f"output '{output_spec.format}' reads column "
                                 f"'{name}', which step '{label}' does not produce", hint)
        outputs.append(PlannedOutput(index, sink, label, output_spec.path))
    return outputs


def _fuse_groups(plan_steps: list[PlannedStep], read_by_outputs: set[str], enabled: bool,
                 heads: bool = True) -> None:
    """Group consecutive fusable steps (``curate.fusion``). A group ends at a step an output
    reads (its kept rows must be stored) and at any step that is not fusable; with ``heads``, a
    group may start at the source or a table step (``fusable_head``) that no output reads."""
    from curate.fusion import fusable, fusable_head

    for planned in plan_steps:
        planned.group = (planned.index, planned.index)
    if not enabled:
        return
    first: PlannedStep | None = None
    for planned in plan_steps:
        if not fusable(planned.step):
            head = heads and fusable_head(planned.step) and planned.label not in read_by_outputs
            first = planned if head else None
            continue
        if first is None:
            first = planned
        for member in plan_steps[first.index:planned.index + 1]:
            member.group = (first.index, planned.index)
        if planned.label in read_by_outputs:
            first = None


def check_columns(step: Step, schema: Schema) -> list[tuple[str, str | None]]:
    out = []
    for name, dtype in step.input_columns().items():
        if name not in schema:
            hint = did_you_mean(name, schema, f"available: {', '.join(schema)}")
            out.append((f"step '{step.label}' reads column '{name}', which no upstream step produces", hint))
        elif not compatible(schema[name], dtype):
            out.append((
                f"step '{step.label}' reads '{name}' as {dtype_name(dtype)}, but upstream it is "
                f"{dtype_name(schema[name])}",
                "cast it with an 'sql' step first",
            ))
    return out


def plan_rows(plan: Plan) -> list[dict[str, Any]]:
    """A printable summary of the plan (used by ``curate plan`` and tests); ``cached`` is read
    from the store now."""
    plan.refresh_cache_status()
    rows = []
    for planned in plan.steps:
        rows.append({
            "index": planned.index,
            "label": planned.label,
            "step": planned.kind,
            "reads": describe(planned.step.input_columns()) if planned.step else {},
            "writes": describe(planned.writes()),
            "removes": [c for c in planned.input_schema if c not in planned.output_schema],
            "fingerprint": planned.fingerprint,
            "cached": planned.cached,
            # The labels of its fused group (one pass per shard, one cache unit), else [].
            "fused": [p.label for p in plan.group_of(planned)] if planned.fused else [],
        })
    return rows


def plan_facts(plan: Plan) -> dict[str, Any]:
    """What ``curate plan --json`` prints (and :func:`curate.plan_spec` returns): the run directory,
    where the executor runs, and :func:`plan_rows`."""
    executor = plan.resolved.executor
    return {"run_dir": str(plan.run_dir), "executor": executor.where() if executor is not None else None,
            "steps": plan_rows(plan)}


__all__ = ["Plan", "PlannedStep", "PlannedOutput", "make_plan", "plan_facts", "plan_rows", "SpecError", "pl"]
