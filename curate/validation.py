"""Resolve a spec against the installed plugins and collect *every* problem, each with its path.

Structure problems come from :mod:`curate.spec`; this module adds unknown names (with the closest
match), params that their plugin's ``Params`` model rejects, and missing optional dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from curate.errors import Problem, SpecError, pip_install
from curate.executor import Executor
from curate.plugins import PluginManager, Registry
from curate.sink import Sink
from curate.source import Source
from curate.spec import LoadedSpec, format_path, problems_from_validation
from curate.step import Step
from curate.suggest import did_you_mean

FILE_FORMATS = ("parquet", "csv", "tsv", "jsonl", "auto")


@dataclass
class Resolved:
    """The spec with every plugin class found and every params model validated."""

    loaded: LoadedSpec
    source_cls: type[Source] | None = None
    source_params: Any = None
    steps: list[Step | None] = field(default_factory=list)  # aligned with spec.steps; None = broken
    step_classes: list[type[Step] | None] = field(default_factory=list)  # aligned; None = unknown
    sinks: list[tuple[type[Sink], Any]] = field(default_factory=list)
    executor: Executor | None = None
    problems: ProblemList | None = None


class ProblemList:
    def __init__(self, loaded: LoadedSpec):
        self.loaded = loaded
        self.items: list[Problem] = []

    def add(self, loc: tuple, message: str, hint: str | None = None) -> None:
        self.items.append(Problem(format_path(loc), message, hint, self.loaded.line_of(loc)))

    def raise_if_any(self) -> None:
        if self.items:
            ordered = sorted(self.items, key=lambda p: (p.line is None, p.line or 0))
            raise SpecError(ordered, self.loaded.source_name)


def _lookup(registry: Registry, key: str, loc: tuple, problems: ProblemList, what: str,
            failed: dict[str, str] | None = None) -> type | None:
    if key in registry.clashes:
        error = registry.clash_error(key)
        problems.add(loc, error.message, error.hint)
        return None
    cls = registry.get(key)
    if cls is None:
        hint = did_you_mean(key, registry.names(), f"installed: {', '.join(registry.names()) or 'none'}")
        if failed:  # the plugin that provides it may be one that failed to load
            names = ", ".join(f"'{name}'" for name in sorted(failed))
            hint = f"{hint}; plugin {names} failed to load (see its warning, or `curate plugins`)"
        problems.add(loc, f"unknown {what} '{key}'", hint)
    return cls


def _params(cls: type, raw: dict, loc: tuple, problems: ProblemList) -> Any:
    from curate.params import Params

    if not (isinstance(cls.Params, type) and issubclass(cls.Params, Params)):
        problems.add(loc, f"{cls.__name__}.Params is not a curate.Params (it is {cls.Params!r})",
                     "this is a bug in the plugin: its Params class must subclass curate.Params "
                     "(from curate import Params), which gives the checks and the fingerprint curate needs")
        return None
    try:
        return cls.Params.model_validate(raw)
    except ValidationError as exc:
        for sub_loc, message in problems_from_validation(exc, loc):
            hint = None
            if message == "unknown key":
                fields = ", ".join(cls.Params.model_fields) or "none"
                accepts = f"{cls.__name__} accepts: {fields}"
                hint = did_you_mean(str(sub_loc[-1]), cls.Params.model_fields, accepts)
            elif (param := sub_loc[len(loc)] if len(sub_loc) > len(loc) else None) in cls.Params.model_fields \
                    and param not in raw:
                field = cls.Params.model_fields[param]
                if field.is_required():  # no default: the spec must set it
                    described = f" ({field.description})" if field.description else ""
                    hint = f"{cls.__name__} has no default for '{param}'{described}: set it in the step's params"
                else:  # the plugin's default, not the user's value
                    hint = (f"the spec does not set '{param}': its default in {cls.__name__}.Params is not "
                            "valid, a bug in the plugin (set the param in the spec meanwhile)")
            problems.add(sub_loc, message, hint)
        return None


def _requirements(cls: type, loc: tuple, problems: ProblemList, what: str) -> None:
    missing = [m for m in getattr(cls, "requires", ()) if _find_spec(m) is None]
    if missing:
        problems.add(loc, f"{what} needs {', '.join(missing)}, not installed",
                     f"run: {pip_install(getattr(cls, 'extra', None), missing)}")


def _find_spec(module: str) -> Any:
    import importlib.util

    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None


def resolve(loaded: LoadedSpec, pm: PluginManager) -> Resolved:
    """Find every plugin class and validate every params block. Problems are collected in
    ``resolved.problems`` (planning adds column problems, then raises one SpecError for all)."""
    spec = loaded.spec
    problems = ProblemList(loaded)
    resolved = Resolved(loaded)

    problems.items.extend(loaded.problems)
    source = spec.source
    source_format = source.format
    if ("source",) not in loaded.invalid:
        resolved.source_cls = _lookup(pm.sources, source_format, ("source", "format"), problems, "source format",
                                      pm.failed)
    if resolved.source_cls is not None:
        _requirements(resolved.source_cls, ("source", "format"), problems, f"source '{source_format}'")
        resolved.source_params = _params(resolved.source_cls, source.params, ("source", "params"), problems)
        if source_format in FILE_FORMATS and not source.path:
            problems.add(("source", "path"), f"a '{source_format}' source needs a path", "a file, glob or directory")

    for index, step_spec in enumerate(spec.steps):
        loc = ("steps", index)
        if loc in loaded.invalid:
            resolved.steps.append(None)
            resolved.step_classes.append(None)
            continue
        cls = _lookup(pm.steps, step_spec.step, loc + ("step",), problems, "step", pm.failed)
        resolved.step_classes.append(cls)
        if cls is None:
            resolved.steps.append(None)
            continue
        _requirements(cls, loc + ("step",), problems, f"step '{step_spec.step}'")
        params = _params(cls, step_spec.params, loc + ("params",), problems)
        try:
            step = cls(params, label=step_spec.name or step_spec.step) if params is not None else None
        except SpecError as exc:  # a step that checks more of its params itself (mix's strategy options)
            for problem in exc.problems:
                where = tuple(part for part in problem.path.split(".") if part) if problem.path else ()
                problems.add(loc + ("params", *where), problem.message, problem.hint)
            step = None
        if step is not None:
            step.untrusted = spec.run.untrusted
            from curate.duck import sql_seconds

            step.sql_timeout = sql_seconds(spec.run.sql_timeout, spec.run.untrusted)
        resolved.steps.append(step)

    labels = spec.labels()
    for index, output in enumerate(spec.outputs):
        loc = ("outputs", index)
        cls = _lookup(pm.sinks, output.format, loc + ("format",), problems, "output format", pm.failed)
        if output.step is not None and output.step not in labels:
            problems.add(loc + ("step",), f"no step labelled '{output.step}'",
                         did_you_mean(output.step, labels, f"labels: {', '.join(labels) or 'none'}"))
        if cls is None:
            continue
        _requirements(cls, loc + ("format",), problems, f"output '{output.format}'")
        params = _params(cls, output.params, loc + ("params",), problems)
        if params is not None:
            resolved.sinks.append((cls, params))

    executor_cls = _lookup(pm.executors, spec.run.executor.name, ("run", "executor", "name"), problems, "executor",
                           pm.failed)
    if executor_cls is not None:
        _requirements(executor_cls, ("run", "executor"), problems, f"executor '{spec.run.executor.name}'")
        params = _params(executor_cls, spec.run.executor.params, ("run", "executor", "params"), problems)
        if params is not None:
            resolved.executor = executor_cls(params)
            resolved.executor.plugins = tuple((info.name, info.module, info.distribution)
                                              for info in pm.infos.values())
            if spec.run.untrusted:
                for param, message, hint in resolved.executor.untrusted_problems():
                    problems.add(("run", "executor", "params", param), message, hint)

    resolved.problems = problems
    return resolved
