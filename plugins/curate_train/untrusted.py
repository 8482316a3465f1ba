"""What an experiment over a spec from someone else (``curate experiment validate|run --untrusted``)
may name besides its variants' specs (whose plans are made untrusted, as ``curate run --untrusted``
makes a spec's; curate.untrusted): its base spec only inside the experiment file's folder, its eval
sets and its training model only inside the working directory, links resolved, and a storage URL
only under an ``--allow-remote`` prefix. Each refusal names the field, the path, where it leads and
the fix, at its line of the experiment file.

The images its eval sets list are data, not fields: a table's image paths (absolute, or relative to
its folder) and an imagefolder's class folders and files must also resolve inside the working
directory and be regular files (:func:`image_problem`), checked where the rows are read
(:func:`curate_train.evalsets.read_rows`), which ``validate`` does too (``run`` validates first, so
it refuses before it curates or trains), and again as each image is opened (:func:`open_image`):
an absolute path, a ``..`` or a link out would have the trainer read any file of the user's as an
image, and a pipe wait for a writer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from curate.errors import Problem, UsageError

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


IMAGES = f"{EXPERIMENT}, so the images its eval sets list must be files inside the working directory"
IMAGE_FIX = ("copy the images into the working directory, or run the experiment without --untrusted if you "
             "trust it")


def outside_problem(path: Path, shown: str, within: tuple[Path, ...]) -> str | None:
    """Why an untrusted experiment's eval set may not list ``path`` (written ``shown``) when it
    resolves outside the working directory (the real folders ``within``), completing "image …":
    it is elsewhere, or a link leads out; None when it lies inside. Nothing is opened."""
    from curate.runfiles import confined

    if confined(path, within) is not None:
        return None
    real = os.path.realpath(path)
    lexical = Path(os.path.abspath(path))  # '..' undone as written, links not followed
    if any(lexical.is_relative_to(folder) for folder in within):
        return f"'{shown}' is a link leading out of the working directory, to {real}"
    return f"'{shown}' " + ("is outside the working directory" if real == shown
                            else f"leads to {real}, outside the working directory")


def image_problem(path: Path, shown: str, within: tuple[Path, ...]) -> str | None:
    """:func:`outside_problem`, or why ``path`` is not a regular file (a pipe would make the read
    wait for a writer, a device never end); None when the image may be read. Nothing is opened."""
    from curate.runfiles import not_regular

    outside = outside_problem(path, shown, within)
    if outside is not None:
        return outside
    why = not_regular(path)
    return None if why is None else f"'{shown}' {why}"


def refusal(label: str, where: str, problem: str, others: int = 0, noun: str = "row") -> UsageError:
    """Eval set ``label``'s image (or class folder) refused: ``where`` it is listed (a table's file
    and row, an imagefolder), what is wrong, and how many ``noun``s besides are refused too."""
    more = f" ({others} other {noun}{' is' if others == 1 else 's are'} refused too)" if others else ""
    return UsageError(f"eval set '{label}': {where}: {problem}{more}; {IMAGES}", IMAGE_FIX)


def check_images(label: str, listed: list[tuple[str, Path, str]], within: tuple[Path, ...],
                 noun: str) -> None:
    """Every image ``listed`` by eval set ``label`` (where it is listed, its path, as written) may
    be read (:func:`image_problem`); else the refusal of the first, counting the others."""
    seen: dict[Path, str | None] = {}  # rows with the same image are checked once
    refused = []
    for where, path, shown in listed:
        if path not in seen:
            seen[path] = image_problem(path, shown, within)
        if seen[path] is not None:
            refused.append((where, seen[path]))
    if refused:
        raise refusal(label, refused[0][0], f"image {refused[0][1]}", len(refused) - 1, noun)


def check_class_folder(label: str, where: str, folder: Path, within: tuple[Path, ...]) -> None:
    """An imagefolder's class ``folder`` lies inside the working directory (before it is listed)."""
    problem = outside_problem(folder, folder.name, within)
    if problem is not None:
        raise refusal(label, where, f"class folder {problem}")


@contextmanager
def open_image(path: Path, within: tuple[Path, ...], where: str) -> Iterator[BinaryIO]:
    """The image ``path`` of an untrusted eval set, checked again (it may have changed since its
    rows were read) and opened at its real path, never waiting on a pipe (``O_NONBLOCK``), only if
    what was opened is a regular file; else a UsageError naming ``where`` (a table's file and row)."""
    from curate.runfiles import NotRegularFile, confined, describe_mode, open_regular

    real = confined(path, within)
    problem = image_problem(path, str(path), within)
    if real is None or problem is not None:  # both: a link swapped in between the two is refused too
        problem = problem or f"'{path}' changed while it was checked"
        raise UsageError(f"{where}: image {problem}; {IMAGES}", IMAGE_FIX)
    with ExitStack() as stack:
        try:
            handle = stack.enter_context(open_regular(Path(real)))
        except NotRegularFile as exc:
            raise UsageError(f"{where}: image '{path}' is {describe_mode(exc.mode)}, not a file; {IMAGES}",
                             IMAGE_FIX) from None
        yield handle


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
