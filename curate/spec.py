"""The curation spec: YAML, parsed with a safe loader into pydantic models with unknown keys
forbidden. Step/source/sink params are validated by the plugin's own ``Params`` model later, in
:mod:`curate.validation`, so every problem is reported with its path in one go.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from curate.diskspace import DEFAULT_MIN_FREE_DISK, parse_size
from curate.errors import Problem, SpecError
from curate.step import DEFAULT_MEMORY_LIMIT
from curate.yaml_limits import MAX_SPEC_BYTES, YamlTooLarge, check_node

LABEL_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The spec's name becomes part of the run directory ({name} in run.dir): never a path.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
RUN_DIR_PLACEHOLDERS = ("name",)  # what run.dir may contain in braces


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(_Model):
    format: str = Field("auto", description="parquet, csv, tsv, jsonl, auto (by extension), or a plugin's format")
    path: str | None = Field(None, description="a file, a glob or a directory (relative to the spec file)")
    columns: dict[str, str] = Field(
        default_factory=dict, description="canonical name ← source column, e.g. {url: URL, alt_text: TEXT}"
    )
    keep: list[str] | None = Field(None, description="extra source columns to keep (default: all)")
    uid_columns: list[str] = Field(["url", "alt_text"], description="canonical columns the uid is derived from "
                                   "(each as DuckDB writes it as text: a number read from CSV is its text in the "
                                   "file, '1e-7', from Parquet DuckDB's, '1e-07', so uids over numbers differ "
                                   "between the two). A derived uid is 64 bits of the md5 of that text; from 6M "
                                   "rows on, a run checks that no two rows of different content share one")
    params: dict[str, Any] = Field(default_factory=dict)


class StepSpec(_Model):
    step: str
    name: str | None = Field(None, description="a label, unique in the spec (default: the step name)")
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        if value is not None and not LABEL_PATTERN.match(value):
            raise ValueError("must be letters, digits and underscores, not starting with a digit")
        return value


class OutputSpec(_Model):
    format: str
    path: str
    step: str | None = Field(None, description="label of the step whose output to write (default: last)")
    params: dict[str, Any] = Field(default_factory=dict)


class ExecutorSpec(_Model):
    name: str = "local"
    params: dict[str, Any] = Field(default_factory=dict)


class RunSpec(_Model):
    dir: str = Field("runs/{name}", description="run directory; {name} is the spec's name")
    # strict: YAML's `true` is no count (pydantic took it as 1), nor is "5" or 2.0.
    seed: int = Field(0, strict=True)
    shard_size: int = Field(100_000, gt=0, strict=True, description="rows per shard; bounds memory per step")
    memory_limit: str = Field(DEFAULT_MEMORY_LIMIT, description="DuckDB memory limit of each table-wide query "
                              "(it spills to the run directory beyond it). The default, 256MB, keeps a run's memory "
                              "flat in the table's size (benchmarks/README.md: 100M rows within 1.5x of 10M); "
                              "raise it for big table steps on a machine with memory to spare")
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    cache_dir: str | None = Field(None, description="content-addressed step store (default: RUN_DIR/store)")
    fuse: bool = Field(True, description="run consecutive thread-safe shard steps (filter, sql, select, "
                       "normalize_text, sample…) in one pass per shard, storing only the last one's kept rows "
                       "and every one's dropped rows; false stores every step's kept rows")
    fuse_heads: bool = Field(False, description="with fuse, a group may also start at the source or a table step "
                             "(local executor): a Parquet source is read in place and the head's kept rows are not "
                             "stored (13-15 % less CPU on relational specs). Off by default: the group is then one "
                             "cache unit (changing a later member re-runs the head, unless it stored its kept rows "
                             "in an earlier run, so experiment variants share less) and a run switched to another "
                             "executor re-runs it")
    report: bool = Field(True, description="write report.html at the end (when a report plugin is installed)")
    untrusted: bool = Field(False, description="the spec comes from someone else: SQL in steps gets no file, "
                            "network or extension access (DuckDB's enable_external_access=false), and each "
                            "query at most 600 s; the files and folders it names must lie inside the working "
                            "directory, and it may use no storage URL (s3://…) but those the user allows with "
                            "--allow-remote")
    min_free_disk: str = Field(DEFAULT_MIN_FREE_DISK, description="what a run leaves free on the disk of its run "
                               "directory and store, and of each output: it stops (a re-run resumes) rather than store "
                               "a shard or write on, and DuckDB spills no further, once less is free (512MB, 2GB, "
                               "0 = no check; an untrusted spec: at least 512MB, whatever it sets)")
    sql_timeout: float | None = Field(None, gt=0, le=7 * 24 * 3600, description="seconds one query of a filter or "
                                      "sql step may run (per shard, or for the table); none: no limit (an untrusted "
                                      "spec: at most 600)")

    @field_validator("dir")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        # Anything else in braces was created literally ("runs/{nmae}").
        unknown = [f"{{{name}}}" for name in re.findall(r"\{([^{}]*)\}", value) if name not in RUN_DIR_PLACEHOLDERS]
        if unknown:
            known = ", ".join(f"{{{name}}}" for name in RUN_DIR_PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {', '.join(unknown)} in {value!r}; known: {known}")
        if "{" in re.sub(r"\{[^{}]*\}", "", value) or "}" in re.sub(r"\{[^{}]*\}", "", value):
            raise ValueError(f"unmatched brace in {value!r}; placeholders are written {{name}}")
        return value

    @field_validator("min_free_disk", mode="before")
    @classmethod
    def _size(cls, value: Any) -> str:
        parse_size(value)  # a ValueError names the value and how sizes are written
        return str(value)

    @field_validator("memory_limit", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> str:
        # A size, never text: it was pasted into DuckDB's SET, so "256MB'; COPY … TO …; SELECT '1"
        # ran any statement with full file access, from an untrusted spec too.
        if parse_size(value) <= 0:
            raise ValueError(f"{value!r} leaves DuckDB no memory: give a size such as 256MB or 2GB")
        return str(value)

    @field_validator("executor", mode="before")
    @classmethod
    def _executor_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class Spec(_Model):
    version: int = Field(1, strict=True)
    name: str = "curation"
    description: str | None = None
    source: SourceSpec
    steps: list[StepSpec] = Field(default_factory=list)
    outputs: list[OutputSpec] = Field(default_factory=list)
    run: RunSpec = Field(default_factory=RunSpec)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value) or ".." in value:
            raise ValueError(f"must be letters, digits, '-', '_' and '.' (no '/', no '..'), got {value!r}")
        return value

    @model_validator(mode="after")
    def _unique_labels(self, info: ValidationInfo) -> Spec:
        # load_spec_text reports each duplicate at its own step's line (it has the YAML); a Spec
        # made from data anywhere else is refused here.
        if not (info.context or {}).get(LABELS_LOCATED):
            for index, first, label in duplicate_labels(self.steps)[:1]:
                raise ValueError(f"{duplicate_label_message(index, first, label)}: {DUPLICATE_LABEL_FIX}")
        return self

    def labels(self) -> list[str]:
        return [s.name or s.step for s in self.steps]

    def canonical_json(self) -> str:
        data = self.model_dump(mode="json")
        for setting in ("untrusted", "sql_timeout"):  # specs written before the setting keep their hash
            if not data["run"][setting]:
                del data["run"][setting]
        if data["run"]["min_free_disk"] == DEFAULT_MIN_FREE_DISK:
            del data["run"]["min_free_disk"]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def dump_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=False), sort_keys=False)


LABELS_LOCATED = "labels_located"  # validation context: the caller reports duplicate labels
DUPLICATE_LABEL_FIX = "give one of them a distinct 'name:'"


def duplicate_labels(steps: list[StepSpec]) -> list[tuple[int, int, str]]:
    """``(index, index of the first step with the same label, label)`` of every step labelled as
    an earlier one is."""
    first: dict[str, int] = {}
    found = []
    for index, step in enumerate(steps):
        label = step.name or step.step
        if label in first:
            found.append((index, first[label], label))
        else:
            first[label] = index
    return found


def duplicate_label_message(index: int, first: int, label: str, first_line: int | None = None) -> str:
    where = f" (line {first_line})" if first_line is not None else ""
    return f"steps[{index}] and steps[{first}]{where} are both labelled '{label}'"


def duplicate_label_problems(spec: Spec, node: yaml.Node | None) -> list[Problem]:
    """Each step labelled as an earlier one, at its own line (where a second step was added or
    renamed), naming the first one's line."""
    return [Problem(format_path(("steps", index)),
                    duplicate_label_message(index, first, label, line_of(node, ("steps", first))),
                    DUPLICATE_LABEL_FIX, line_of(node, ("steps", index)))
            for index, first, label in duplicate_labels(spec.steps)]


class LoadedSpec:
    """A parsed spec plus where it came from, so problems can name lines."""

    def __init__(self, spec: Spec, path: Path | None, node: yaml.Node | None,
                 problems: list[Problem] | None = None, invalid: set[tuple] | None = None):
        self.spec = spec
        self.path = path
        # The spec file the run came from: ``path`` itself, except for `curate run --resume`,
        # which reads RUN_DIR/spec.yaml but keeps the original file's directory as the base of
        # relative paths (and as the manifest's spec_path). None: the working directory.
        self.origin = path
        self.node = node
        # Structure problems found while loading leniently; planning adds the rest and raises
        # them all at once, so one `curate validate` shows every mistake.
        self.problems = list(problems or [])
        self.invalid = set(invalid or ())  # ("source",) or ("steps", i): left out of resolution

    @property
    def directory(self) -> Path:
        return self.origin.parent if self.origin else Path.cwd()

    @property
    def source_name(self) -> str:
        return str(self.path) if self.path else "spec"

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        return line_of(self.node, path)


def line_of(node: yaml.Node | None, path: tuple[str | int, ...]) -> int | None:
    """1-based line of the YAML node at ``path`` (or of its deepest existing parent)."""
    best = node.start_mark.line + 1 if node is not None else None
    for _, best in _walk(node, path):
        pass
    return best


def node_at(node: yaml.Node | None, path: tuple[str | int, ...]) -> yaml.Node | None:
    """The YAML node at ``path`` (None: there is none)."""
    found = list(_walk(node, path))
    if len(found) < len(path):
        return None
    return found[-1][0] if path else node


def _walk(node: yaml.Node | None, path: tuple[str | int, ...]) -> Iterator[tuple[yaml.Node, int]]:
    """Each node along ``path`` that exists, with its 1-based line (a mapping value's is its key's)."""
    for part in path:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if key.value == part:
                    node = value
                    yield value, key.start_mark.line + 1
                    break
            else:
                return
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            yield node, node.start_mark.line + 1
        else:
            return


def format_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def parse_path(text: str) -> tuple[str | int, ...]:
    """``steps[1].params.columns`` → ``("steps", 1, "params", "columns")``: the inverse of
    :func:`format_path` (a key holding '.' or '[' reads as two keys; lines then fall back to the
    deepest key that exists, as :func:`line_of` does)."""
    return tuple(int(index) if index else key for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", text))


def problems_from_validation(error: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[tuple]:
    """Pydantic errors → (path tuple, message) with messages a data engineer can act on."""
    out = []
    for item in error.errors(include_url=False):
        loc = prefix + tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        out.append((loc, humanize(item)))
    return out


def humanize(item: dict) -> str:
    kind, ctx, value = item["type"], item.get("ctx", {}), item.get("input")
    shown = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    bounds = {
        "less_than_equal": ("≤", "le"),
        "less_than": ("<", "lt"),
        "greater_than_equal": ("≥", "ge"),
        "greater_than": (">", "gt"),
    }
    if kind in bounds:
        sign, key = bounds[kind]
        bound = ctx.get(key)
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # a float field reports `le=1` as 1.0; the spec author wrote 1
        return f"must be {sign} {bound}, got {shown}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required, but missing"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {shown}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{item['msg'].lower()}, got {shown}"
    message = item["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return message


def parse_yaml(text: str, source_name: str = "spec") -> tuple[Any, yaml.Node | None]:
    # One parse gives both: the node (lines, duplicate keys) and the data built from it, as
    # yaml.safe_load builds it; composing and then loading the text parsed every spec twice.
    # A stranger's text is bounded before anything walks the data (curate.yaml_limits).
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError([Problem("", f"refused: the YAML is {len(text):,} characters; a spec is at most "
                                 f"{MAX_SPEC_BYTES:,}", hint="keep long lists (entries, eval sets) in files the "
                                 "spec names")], source_name)
    try:
        loader = yaml.SafeLoader(text)  # refuses a text with unprintable characters
        try:
            node = loader.get_single_node()
            if node is not None:
                check_node(node)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([Problem("", f"not valid YAML: {problem}", line=line)], source_name) from None
    except YamlTooLarge as exc:
        raise SpecError([Problem("", f"refused: {exc}", line=exc.line, hint=exc.hint)], source_name) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise SpecError([Problem("", "refused: the YAML nests collections hundreds of levels deep",
                                 hint="a spec is a few levels deep; check the brackets")], source_name) from None
    duplicates = duplicate_keys(node)
    if duplicates:
        raise SpecError(duplicates, source_name)
    return data, node


def duplicate_keys(node: yaml.Node | None, path: tuple[str | int, ...] = ()) -> list[Problem]:
    """Keys given twice in one mapping, at any depth. YAML loaders keep the last silently, so a
    second ``steps:`` replaced the first without a word."""
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if key.value in first:
                    problems.append(Problem(
                        format_path(path + (key.value,)),
                        f"key '{key.value}' is given twice, on lines {first[key.value]} and {line}",
                        hint="keep one of them (YAML would silently use only the last)", line=line,
                    ))
                else:
                    first[key.value] = line
                problems += duplicate_keys(value, path + (key.value,))
            else:
                problems += duplicate_keys(value, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += duplicate_keys(item, path + (index,))
    return problems


def load_spec_text(text: str, path: Path | None = None) -> LoadedSpec:
    """Parse and check the spec's structure (not yet its plugins' params: see validation)."""
    data, node = parse_yaml(text, str(path) if path else "spec")
    return load_spec_data(data, path, node)


def load_spec_data(data: Any, path: Path | None = None, node: yaml.Node | None = None) -> LoadedSpec:
    """Check the structure of spec data parsed from YAML; ``node``, that YAML, gives each problem
    its line. Without it (data a caller assembled, such as an experiment's variant) problems have
    no line, and no line of text that was never shown to anyone is named."""
    source_name = str(path) if path else "spec"
    if not isinstance(data, dict):
        raise SpecError([Problem("", "a spec is a YAML mapping with at least a 'source:' section")], source_name)
    if "variants" in data and "variants" not in Spec.model_fields:
        # An experiment file (curate_train): its keys would each be reported as unknown.
        raise SpecError([Problem(
            "variants", "this is an experiment (a base spec plus variants), not a curation spec",
            hint=f"run it with 'curate experiment run {source_name}'; "
                 f"'curate experiment validate {source_name}' checks it", line=line_of(node, ("variants",)),
        )], source_name)
    problems: list[Problem] = []
    invalid: set[tuple] = set()
    try:
        spec = Spec.model_validate(data, context={LABELS_LOCATED: True})
    except ValidationError as exc:
        for loc, message in problems_from_validation(exc):
            hint = None
            if message == "unknown key":
                hint = _close_key(loc, data)
            problems.append(Problem(format_path(loc), message, hint=hint, line=line_of(node, loc)))
        lenient, invalid = _lenient(data)
        if lenient is None:
            raise SpecError(problems, source_name) from None
        spec = lenient
    problems += duplicate_label_problems(spec, node)
    return LoadedSpec(spec, path, node, problems, invalid)


def _lenient(data: dict[str, Any]) -> tuple[Spec | None, set[tuple]]:
    """The spec with its broken parts replaced by placeholders, to keep validating the rest."""
    invalid: set[tuple] = set()

    def valid(model: type[BaseModel], value: Any) -> BaseModel | None:
        try:
            return model.model_validate(value)
        except ValidationError:
            return None

    source = valid(SourceSpec, data.get("source")) if isinstance(data.get("source"), dict) else None
    if source is None:
        invalid.add(("source",))
        source = SourceSpec(format="auto", path=None)
    steps = []
    raw_steps = data.get("steps") if isinstance(data.get("steps"), list) else []
    for index, raw in enumerate(raw_steps):
        step = valid(StepSpec, raw) if isinstance(raw, dict) else None
        if step is None:
            invalid.add(("steps", index))
            step = StepSpec(step=f"<invalid {index}>", name=f"invalid_{index}")
        steps.append(step)
    outputs = []
    for raw in data.get("outputs") or [] if isinstance(data.get("outputs"), list) else []:
        output = valid(OutputSpec, raw) if isinstance(raw, dict) else None
        if output is not None:
            outputs.append(output)
    run = valid(RunSpec, data.get("run") or {}) or RunSpec()
    try:
        spec = Spec.model_construct(
            version=1, name=str(data.get("name") or "curation"), description=None,
            source=source, steps=steps, outputs=outputs, run=run,
        )
    except Exception:  # nothing salvageable
        return None, invalid
    return spec, invalid


def _close_key(loc: tuple, data: Any) -> str | None:
    """For an unknown key, the closest allowed key of the model it appeared in."""
    from curate.suggest import did_you_mean

    model = _model_at(loc[:-1])
    if model is None:
        return None
    allowed = list(model.model_fields)
    return did_you_mean(str(loc[-1]), allowed, f"allowed keys: {', '.join(allowed)}")


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``loc`` (list indices skipped)."""
    model: type[BaseModel] = Spec
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        nested = _find_model(field.annotation)
        if nested is None:
            return None
        model = nested
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def load_spec(path: str | Path) -> LoadedSpec:
    path = Path(path)
    return load_spec_text(read_spec_file(path), path)


def read_spec_file(path: Path) -> str:
    """The text of a spec-like YAML file (a spec, an experiment, an eval-set file): a regular file
    (a FIFO would be waited on forever), of at most ``MAX_SPEC_BYTES``, in UTF-8; else one SpecError."""
    if not path.exists():
        raise SpecError([Problem("", f"spec file not found: {path}")], str(path))
    if not path.is_file():
        raise SpecError([Problem("", f"not a file: {path}")], str(path))
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise SpecError([Problem("", f"refused: the spec file is {size:,} bytes; a spec is at most "
                                 f"{MAX_SPEC_BYTES:,}", hint="keep long lists (entries, eval sets) in files the "
                                 "spec names")], str(path))
    with open(path, "rb") as handle:
        return spec_text(handle, str(path), "the spec file")


def spec_text(stream: Any, name: str, what: str) -> str:
    """The text of the spec ``stream`` (a binary file, or stdin's buffer) holds: at most
    ``MAX_SPEC_BYTES`` read, however much it holds, and that in UTF-8; else one SpecError."""
    data = stream.read(MAX_SPEC_BYTES + 1)  # a file that grows meanwhile, or endless stdin, is still bounded
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError([Problem("", f"refused: {what} is over {MAX_SPEC_BYTES:,} bytes")], name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problem = Problem("", f"not a UTF-8 text file: byte 0x{data[exc.start]:02x} at offset {exc.start} is "
                          "not valid UTF-8", hint="save the spec as UTF-8", line=line)
        raise SpecError([problem], name) from None
    return text
