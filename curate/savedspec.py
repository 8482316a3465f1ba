"""Which spec ``curate run --resume RUN_DIR`` (and ``curate.run(resume=RUN_DIR)``) runs, and with
what trust: the copy saved in the run directory, trusted only while the user's own spec file still
says the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.display import for_rich
from curate.errors import CurateError


def saved_spec(run_dir: Path, console: Any, untrusted: bool = False) -> Any:
    """The spec saved in ``run_dir`` (what the run ran), for ``curate run --resume``; ``console``
    (rich's) says what is noted on the way. Its relative
    paths stay relative to the original spec file's directory, as when the run started. The
    original file is not run: it may have been edited since (that is said, not done).

    A spec is code (its SQL reads any file; its outputs may name any path), and the saved copy is
    only a file in a directory that may come from anyone. It runs with the trust the user gave
    it only while their spec file, the one the manifest names, still says the same; otherwise as
    ``--untrusted``, said with the reason and the command that runs the user's own spec."""
    from curate.errors import RunDirError, SpecError
    from curate.runstore import read_manifest
    from curate.spec import load_spec

    manifest = read_manifest(run_dir)
    saved = run_dir / "spec.yaml"
    original = Path(manifest["spec_path"]) if manifest.get("spec_path") else None
    again = f"curate run {original or 'SPEC'} --run-dir {run_dir}"
    if not saved.is_file():
        raise RunDirError(f"cannot resume {run_dir}: it has no spec.yaml, the spec the run ran",
                          f"run the spec again into it ({again}); finished steps are reused")
    try:
        loaded = load_spec(saved)
    except SpecError as error:  # damaged (cut short by a full disk, edited by hand), or a plugin gone
        raise RunDirError(f"cannot resume {run_dir}: its spec.yaml, the spec the run ran, cannot be used: "
                          f"{error}", f"run the spec again into it ({again}); finished steps are reused") \
            from None
    loaded.origin = original
    why = _not_vouched_for(original, loaded.spec, run_dir)
    if why is None:
        return loaded
    if untrusted or loaded.spec.run.untrusted:  # untrusted anyway (now, or when the run started)
        if why == CHANGED:
            console.print(f"note: {for_rich(original)} has changed since this run started; resuming with the "
                          f"spec saved in {for_rich(saved)} (to run the edited spec here: curate run "
                          f"{for_rich(original)} --run-dir {for_rich(run_dir)})")
        return loaded
    loaded.spec.run.untrusted = True
    what = f"{for_rich(original)} {why}" if original is not None else why
    again = (f"curate run {for_rich(original)} --run-dir {for_rich(run_dir)}" if why == CHANGED
             else f"curate run SPEC --run-dir {for_rich(run_dir)}, SPEC being your copy of it")
    console.print(f"note: {what}; resuming with the spec saved in {for_rich(saved)} as untrusted "
                  "(--untrusted: its SQL gets no file, network or extension access, its outputs, run.dir, "
                  "cache_dir and the files it names stay under the working directory, and it uses no storage "
                  f"URL but those --allow-remote allows). To run your own spec here with full trust: {again}")
    return loaded


CHANGED = "has changed since this run started"


def _not_vouched_for(original: Path | None, ran: Any, run_dir: Path) -> str | None:
    """Why no spec file of the user's vouches for the saved spec ``ran`` (None: the spec file
    ``original``, the manifest's ``spec_path``, is the user's, outside the run directory, and
    says what ``ran`` says)."""
    import os

    from curate.spec import load_spec

    if original is None:
        return "the run's manifest names no spec file it came from"
    if not original.is_file():
        return "is gone (the spec file the run came from, per its manifest)"
    if Path(os.path.realpath(original)).is_relative_to(Path(os.path.realpath(run_dir))):
        return "is inside the run directory: the manifest names no spec file of yours"
    if hasattr(os, "geteuid") and original.stat().st_uid != os.geteuid():
        return "belongs to another user"
    try:
        current = load_spec(original).spec
    except CurateError:
        return CHANGED
    current.run.untrusted = current.run.untrusted or ran.run.untrusted  # --untrusted is saved with the run
    return None if current.hash() == ran.hash() else CHANGED
