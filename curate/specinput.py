"""A spec as a Python caller gives it (:func:`curate.run`, :func:`curate.validate`,
:func:`curate.plan_spec`): a spec file's path, the spec's YAML text, or the spec as data.

A path is loaded as ``curate run PATH`` loads it: its relative paths resolve against its folder,
and a run from it resumes with full trust. YAML text and data have no file, as a spec on stdin
(``curate run -``) has none: their relative paths (``source.path``) resolve against the working
directory, as ``run.dir`` always does, and their run's manifest names no spec file, so resuming
it from its run directory alone runs the saved copy as untrusted (give the same spec again to
resume it with full trust).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

# What curate.run and friends take as a spec.
SpecLike = Union[str, "os.PathLike[str]", Mapping[str, Any]]


def load_spec_like(spec: Any) -> Any:
    """``spec`` loaded (a :class:`curate.spec.LoadedSpec`), or ``-`` (stdin: the caller's planning
    reads it, as ``curate run -`` does). A ``str`` is a path unless it holds a line break, or names
    no file and reads as a YAML mapping (``"{source: {path: d.parquet}}"``): then it is the spec's
    text. A problem is one SpecError naming each, with its line where the spec is text."""
    from curate.errors import Problem, SpecError
    from curate.spec import LoadedSpec, load_spec, load_spec_data, load_spec_text
    from curate.stdinspec import STDIN

    if isinstance(spec, LoadedSpec) or spec == STDIN:
        return spec
    if isinstance(spec, Mapping):
        return load_spec_data(copy.deepcopy(dict(spec)))
    if isinstance(spec, os.PathLike):
        return load_spec(Path(spec))
    if isinstance(spec, str):
        return load_spec_text(spec) if _is_text(spec) else load_spec(spec)
    raise SpecError([Problem("", f"a spec is a path, YAML text or a dict, not {type(spec).__name__}",
                             hint="pass the spec file's path, its text, or the spec as a dict")])


def _is_text(spec: str) -> bool:
    if "\n" in spec or "\r" in spec:
        return True
    try:
        if spec and Path(spec).exists():
            return False
    except (OSError, ValueError):  # too long, or a NUL: no file's name
        pass
    from curate.errors import SpecError
    from curate.spec import parse_yaml

    try:  # curate's bounded parse: a one-line spec is no less YAML from anyone
        return isinstance(parse_yaml(spec)[0], dict)
    except SpecError:
        return False
