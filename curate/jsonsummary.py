"""What ``curate run --json`` and ``curate validate --json`` print: one JSON object on stdout, the
only thing there, however the command ends (complete, failed, stopped by a signal, refused a lock).

A pipeline scraped the rich table before (automation probe F12). The object is written by
:func:`emit` once :func:`curate.cli.main` knows the exit code and the error it printed; the
command fills in what it learns on the way (spec, run directory, the engine's manifest), and
:func:`expect` records the warnings shown meanwhile (they still go to stderr too).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click


class Pending:
    """One command's answer, filled in while it runs."""

    def __init__(self, command: str):
        self.command = command  # "run", "validate" or "gc"
        self.spec: str | None = None
        self.run_dir: str | None = None
        self.manifest: dict[str, Any] | None = None  # the engine's, once the run has one
        self.result: dict[str, Any] | None = None  # another command's own fields (gc's survey)
        self.warnings: list[str] = []
        self.error: str | None = None  # what the text view printed
        self.exception: BaseException | None = None
        self.stopped = False  # a signal (or Ctrl-C) ended it
        self.ran = False  # the command started (not --help), or failed: there is something to answer
        self._undo: list[Any] = []


_pending: list[Pending | None] = [None]


def pending() -> Pending | None:
    return _pending[0]


def started() -> Pending | None:
    """The command's body runs: it will be answered."""
    answer = pending()
    if answer is not None:
        answer.ran = True
    return answer


def expect(command: str) -> Pending:
    """``command --json`` was asked for: from now on record the warnings shown."""
    from curate.warnrecord import record_warnings

    clear()
    answer = Pending(command)
    _pending[0] = answer
    answer._undo = [record_warnings(answer.warnings)]
    return answer


def clear() -> None:
    answer, _pending[0] = _pending[0], None
    for undo in reversed(answer._undo if answer else []):
        undo()


def ended(error: str, exception: BaseException | None = None, stopped: bool = False) -> None:
    """The command failed (or was stopped) and printed ``error``."""
    answer = pending()
    if answer is not None:
        answer.error, answer.exception, answer.stopped, answer.ran = error, exception, stopped, True


def emit(exit_code: int) -> None:
    """Print the pending answer, if ``--json`` asked for one, and stop recording."""
    answer = pending()
    clear()
    if answer is None or not answer.ran:  # --help: no command ran
        return
    answering = {"validate": validate_answer, "gc": gc_answer}.get(answer.command, run_answer)
    shown = answering(answer, exit_code)
    # ensure_ascii: ASCII whatever the locale, and control characters escaped
    try:
        click.echo(json.dumps(shown, indent=2, default=str))
    except (BrokenPipeError, ValueError):  # its reader went away (a closed stdout: ValueError)
        from curate.closedpipe import silence_stdout

        silence_stdout()


def run_answer(answer: Pending, exit_code: int) -> dict[str, Any]:
    """``curate run --json``: the manifest's fields that ``curate inspect --json`` shows under the
    same names, and how the command ended."""
    from curate.runstore import funnel

    manifest = answer.manifest or {}
    status = "complete" if exit_code == 0 else "interrupted" if answer.stopped else "failed"
    shown: dict[str, Any] = {
        "status": status, "exit_code": exit_code,
        "run_dir": manifest.get("run_dir", answer.run_dir), "spec": answer.spec,
        **{key: manifest.get(key) for key in ("name", "spec_hash", "started_at", "finished_at", "seconds")},
        "steps": funnel(manifest),
        "outputs": [{**output, "bytes": size_of(output.get("path"))}
                    for output in manifest.get("outputs", [])],
        "warnings": answer.warnings,
    }
    if manifest.get("stale_outputs"):
        shown["stale_outputs"] = manifest["stale_outputs"]
    if answer.error is not None:
        shown["error"] = answer.error
    return shown


def gc_answer(answer: Pending, exit_code: int) -> dict[str, Any]:
    """``curate gc --json``: how it ended, as ``run --json`` says it, and what it found
    (curate.gc.Survey.answer: empty when it was refused before it looked)."""
    status = "complete" if exit_code == 0 else "interrupted" if answer.stopped else "failed"
    shown: dict[str, Any] = {"status": status, "exit_code": exit_code, "run_dir": answer.run_dir,
                             **(answer.result or {}), "warnings": answer.warnings}
    if answer.error is not None:
        shown["error"] = answer.error
    return shown


def validate_answer(answer: Pending, exit_code: int) -> dict[str, Any]:
    """``curate validate --json``: ok, and every problem located as the text view locates it."""
    from curate.errors import CurateError, problems_of

    errors: list[dict[str, Any]] = []
    exc = answer.exception
    if isinstance(exc, CurateError):
        errors = [problem.as_json() for problem in problems_of(exc)]
    elif answer.error is not None:
        errors = [{"where": "", "line": None, "file": None, "message": answer.error, "hint": None}]
    return {"ok": exit_code == 0, "exit_code": exit_code, "spec": answer.spec, "run_dir": answer.run_dir,
            "errors": errors, "warnings": answer.warnings}


def size_of(path: Any) -> int | None:
    """Bytes of an output file, or of every file under an output folder; None for a storage URL
    or a path that is not there."""
    from curate.remote import is_url

    if not isinstance(path, str) or is_url(path):
        return None
    try:
        if not os.path.isdir(path):
            return os.stat(path).st_size
        return sum(os.lstat(Path(top) / name).st_size for top, _, names in os.walk(path) for name in names)
    except OSError:
        return None
