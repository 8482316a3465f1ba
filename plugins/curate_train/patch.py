"""Variants of a curation spec: a base spec (as YAML data) plus a patch per variant.

A patch has three parts, applied in this order to a deep copy of the base:

- ``remove: [clip_filter, 3]``: steps by label (``name:``, else the step type) or by position;
- ``insert: [{after: dedup, steps: [...]}]`` (or ``before:``; neither: at the end): spec entries
  (``{step: sample, params: {count: 600}}``) placed next to a step of the base;
- ``set: {steps.clip_filter.params.top_fraction: 0.6, source.path: other.parquet}``: dotted
  paths; ``steps.<label>`` or ``steps.<position>`` address a step, mapping keys address the rest.
  The parent of the last key must exist (a typo is an error naming the closest key or label); the
  last key may be new (a param the base left at its default). ``null`` removes that key (the
  param goes back to its default).

Errors are :class:`~curate.errors.Problem` s naming the variant, the patch path and the closest
existing name; nothing here imports more than pydantic and difflib.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Callable
from typing import Any

from pydantic import Field, field_validator, model_validator

from curate.errors import Problem
from curate.params import Params

VARIANT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def experiment_name(value: str) -> str:
    """An experiment's name is a folder too: its default run directory is ``runs/<name>`` beside
    the spec's folder, and a name such as ``/home/me`` or ``../..`` put the run (its store, its
    summary, the train and shards folders it replaces) anywhere."""
    if not VARIANT_NAME.match(value) or ".." in value:
        raise ValueError(f"an experiment's name becomes its run folder (runs/<name>): letters, digits, '.', '-', '_' "
                         f"(no '/', no '..'), got {value!r}")
    return value


class Insert(Params):
    after: str | int | None = Field(None, description="the step (label or position) the new steps follow")
    before: str | int | None = Field(None, description="the step the new steps precede")
    steps: list[dict[str, Any]] = Field(min_length=1, description="spec entries: {step: ..., name: ..., params: ...}")

    @model_validator(mode="after")
    def _one_anchor(self) -> Insert:
        if self.after is not None and self.before is not None:
            raise ValueError("give 'after' or 'before', not both")
        return self


class Variant(Params):
    name: str
    set: dict[str, Any] = Field(default_factory=dict, description="dotted path → new value (null: remove the key)")
    remove: list[str | int] = Field(default_factory=list, description="steps to remove, by label or position")
    insert: list[Insert] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not VARIANT_NAME.match(value):
            raise ValueError(f"a variant name becomes a folder: letters, digits, '.', '-', '_', got {value!r}")
        return value


class PatchError(Exception):
    """One problem with one patch path (turned into a Problem by :func:`apply_patch`)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.message, self.hint = message, hint


def step_labels(steps: list[Any]) -> list[str]:
    """The label of each spec entry: its ``name:``, else its ``step:`` type (as curate.spec)."""
    return [str(s.get("name") or s.get("step")) if isinstance(s, dict) else f"<{i}>" for i, s in enumerate(steps)]


def closest(name: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
    listed = ", ".join(choices) or "none"
    return (f"did you mean '{match[0]}'? " if match else "") + f"there are: {listed}"


def find_step(steps: list[Any], ref: str | int) -> int:
    """Index of the step ``ref`` names: a label, or a position (an int, or digits)."""
    labels = step_labels(steps)
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        index = int(ref)
        if 0 <= index < len(steps):
            return index
        raise PatchError(f"there is no step at position {index}", f"the spec has {len(steps)} steps (0-{len(steps) - 1})"
                         if steps else "the spec has no steps")
    if ref in labels:
        return labels.index(ref)
    raise PatchError(f"no step labelled '{ref}'", closest(ref, labels))


def split_path(path: str) -> list[str]:
    parts = path.split(".")
    if not path or any(part == "" for part in parts):
        raise PatchError(f"'{path}' is not a dotted path", "write it like steps.clip_filter.params.top_fraction")
    return parts


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set (or with ``None`` remove) ``path`` in ``data``; every parent of the last key must exist."""
    parts = split_path(path)
    node: Any = data
    walked: list[str] = []
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(walked) or "the spec"
        if isinstance(node, list):
            if walked == ["steps"]:  # steps by label or position
                index = find_step(node, part)
            elif part.isdigit() and int(part) < len(node):
                index = int(part)
            else:
                raise PatchError(f"{where} is a list of {len(node)}; '{part}' is no position in it")
            if last:
                if value is None:
                    del node[index]
                else:
                    node[index] = value
                return
            node = node[index]
        elif isinstance(node, dict):
            if last:
                if value is None:
                    if part not in node:
                        raise PatchError(f"{where} has no key '{part}' to remove", closest(part, list(node)))
                    del node[part]
                else:
                    node[part] = value
                return
            if part not in node or not isinstance(node[part], (dict, list)):
                if part in node:
                    raise PatchError(f"{where}.{part} is {node[part]!r}, not a mapping or a list",
                                     f"set {'.'.join([*walked, part])} itself")
                raise PatchError(f"{where} has no key '{part}'", closest(part, list(node)))
            node = node[part]
        else:
            raise PatchError(f"{where} is {node!r}, not a mapping or a list")
        walked.append(part)


def apply_patch(base: dict[str, Any], variant: Variant) -> tuple[dict[str, Any], list[Problem]]:
    """The variant's spec data and the problems found (each naming the variant and the path)."""
    data, problems, _ = traced_patch(base, variant)
    return data, problems


# Where a step of a patched spec was written: ("base", index in the base's steps), ("insert", number
# of the insert, index in its steps), or None (a step `set` wrote whole, or not a mapping).
Origin = tuple[str, int] | tuple[str, int, int] | None


def traced_patch(base: dict[str, Any], variant: Variant, locate: Callable[[tuple], int | None] | None = None,
                 ) -> tuple[dict[str, Any], list[Problem], list[Origin]]:
    """:func:`apply_patch`, plus the origin of each step of the result, so that a problem found in
    the patched spec can be shown where it was written. ``locate(path)``: the line of a path inside
    the variant (``("remove", 0)``, ``("set", "steps.dedup.params.columns")``), for the problems."""
    data = copy.deepcopy(base)
    problems: list[Problem] = []
    where = f"variants.{variant.name}"

    def problem(path: str, loc: tuple, message: str, hint: str | None = None) -> None:
        problems.append(Problem(path, message, hint, locate(loc) if locate else None))

    steps = data.setdefault("steps", [])
    if not isinstance(steps, list):
        problem(where, (), "the base spec's steps is not a list")
        return data, problems, []
    # By identity: every step written is kept alive until the end, so no id is reused meanwhile.
    written: list[Any] = list(steps)
    origins: dict[int, Origin] = {id(step): ("base", index) for index, step in enumerate(steps)}
    removed = []
    for number, ref in enumerate(variant.remove):
        try:
            removed.append(find_step(steps, ref))
        except PatchError as error:
            problem(f"{where}.remove", ("remove", number), f"{ref}: {error.message}", error.hint)
    for index in sorted(set(removed), reverse=True):
        del steps[index]
    for number, insert in enumerate(variant.insert):
        anchor = insert.after if insert.after is not None else insert.before
        try:
            if anchor is None:
                position = len(steps)
            else:
                position = find_step(steps, anchor) + (1 if insert.after is not None else 0)
        except PatchError as error:
            key = "after" if insert.after is not None else "before"
            problem(f"{where}.insert[{number}].{key}", ("insert", number, key), f"{anchor}: {error.message}",
                    error.hint)
            continue
        inserted = copy.deepcopy(insert.steps)
        written += inserted
        origins.update({id(step): ("insert", number, index) for index, step in enumerate(inserted)})
        steps[position:position] = inserted
    for path, value in variant.set.items():
        try:
            set_path(data, path, copy.deepcopy(value))
        except PatchError as error:
            problem(f"{where}.set.{path}", ("set", path), error.message, error.hint)
    final = data.get("steps")
    traced = [origins.get(id(step)) if isinstance(step, dict) else None
              for step in (final if isinstance(final, list) else [])]
    return data, problems, traced
