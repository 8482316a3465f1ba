"""What an experiment over a spec from someone else (``curate experiment validate|run --untrusted``)
may name besides its variants' specs (whose plans are made untrusted, as ``curate run --untrusted``
makes a spec's; curate.untrusted): its base spec only inside the experiment file's folder, its eval
sets and its training model only inside the working directory, links resolved, and a storage URL
only under an ``--allow-remote`` prefix. Each refusal names the field, the path, where it leads and
the fix, at its line of the experiment file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from curate.errors import Problem

EXPERIMENT = "the experiment is untrusted (--untrusted)"
FIX = ("copy what it names into the working directory and give its relative path, or run the experiment without "
       "--untrusted if you trust it")


def _leads_to(raw: str, base: Path) -> str:
    """Where ``raw`` (relative to ``base``) leads, links resolved, for a message."""
    path = Path(raw).expanduser()
    return os.path.realpath(path if path.is_absolute() else base / path)


def base_spec_problem(raw: str, folder: Path, line: int | None) -> Problem | None:
    """The base spec ``spec: raw`` of an untrusted experiment lies inside the experiment file's
    ``folder`` (named without ``~`` or ``..``, no link out of it); else the problem."""
    from curate.runfiles import confined, real_folders

    path = Path(raw)
    if raw.startswith("~") or path.is_absolute() or ".." in path.parts or \
            confined(folder / path, real_folders([folder])) is None:
        return Problem("spec", f"'{raw}' leads to {_leads_to(raw, folder)}, outside the experiment file's folder "
                       f"{os.path.realpath(folder)}; {EXPERIMENT}, so its base spec must lie in that folder",
                       "copy the base spec beside the experiment file and give its name (spec: base.yaml), or run "
                       "the experiment without --untrusted if you trust it", line=line)
    return None


def place_problem(field: str, raw: str, base: Path, allowed: tuple[str, ...], line: int | None) -> Problem | None:
    """``field`` names ``raw`` (relative to ``base``): inside the working directory, or a storage
    URL under a prefix of ``allowed``; else the problem."""
    from curate.remote import is_url
    from curate.untrusted import remote_problem

    if is_url(raw):
        problem = remote_problem(raw, allowed, what="experiment", untrusted=EXPERIMENT)
        return None if problem is None else Problem(field, *problem, line=line)
    from curate.runfiles import where_outside

    where = where_outside(raw, base)
    if where is None:
        return None
    return Problem(field, f"'{raw}' leads to {_leads_to(raw, base)}, {where.split(', ', 1)[-1]}; {EXPERIMENT}, so "
                   "the files and folders it names must lie inside the working directory", FIX, line=line)


def eval_problems(loaded: Any, allowed: tuple[str, ...]) -> dict[int, Problem]:
    """Eval set index → the problem of its ``path`` (relative to the experiment file's folder)."""
    out: dict[int, Problem] = {}
    for index, fields in enumerate(loaded.experiment.eval):
        raw = fields.get("path") if isinstance(fields, dict) else None
        if isinstance(raw, str) and raw:
            problem = place_problem(f"eval[{index}].path", raw, loaded.path.parent, allowed,
                                    loaded.line("eval", index, "path"))
            if problem is not None:
                out[index] = problem
    return out


def model_problems(loaded: Any, allowed: tuple[str, ...]) -> list[Problem]:
    """The problem of ``train.model`` when it names a folder or config file (relative to the
    working directory) elsewhere: the training starts from its weights and config."""
    for param, raw in loaded.experiment.train.places():
        problem = place_problem(f"train.{param}", raw, Path.cwd(), allowed, loaded.line("train", param))
        if problem is not None:
            return [problem]
    return []


def store_problem(run_dir: Path) -> str | None:
    """An untrusted experiment's variants share a store in ``run_dir``, given to their (untrusted)
    specs as ``run.cache_dir``, which such a spec may set only inside the working directory."""
    from curate.runfiles import confined, real_folders

    if confined(run_dir, real_folders([os.getcwd()])) is None:
        return (f"the run directory {run_dir} is outside the working directory; {EXPERIMENT}, and its variants' "
                "shared step store (RUN_DIR/store) must lie inside it")
    return None
