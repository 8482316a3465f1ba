"""``curate gc``: list the step folders of a run's store that no run directory needs, and delete
them when asked (:mod:`curate.gc`)."""

from __future__ import annotations

from pathlib import Path

import click

from curate import jsonsummary
from curate.commands.shared import _console, _json_option
from curate.display import for_rich

LISTED = 20  # folders shown by name in the text view (all of them in --json)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--delete", "--yes", "delete", is_flag=True,
              help="Delete the folders listed for deletion (without it, only list them: a dry run).")
@click.option("--forget", "forget", multiple=True, metavar="RUN_DIR",
              help="A run directory registered in the store that is gone for good: gc stops counting it "
                   "(and with --delete removes its registration). Repeatable.")
@click.option("--all-registered", is_flag=True,
              help="Every run directory that uses this shared store has run since 2026-12-08 (each run "
                   "registers): delete folders no registered run directory has used, too.")
@click.option("--wait", is_flag=True,
              help="If a run holds the run directory or store, wait for it instead of refusing.")
@_json_option("gc", "Print only a JSON object on stdout: {\"status\", \"exit_code\", \"run_dir\", \"store_dir\", "
              "\"shared\", \"deleted\", \"run_dirs\", \"referenced\", \"folders\": [{\"folder\", \"label\", "
              "\"bytes\", \"last_used\", \"action\", \"kept_because\", …}], \"bytes\", \"freed_bytes\", "
              "\"blocked\", \"warnings\", \"error\"} (exit codes as without it).")
def gc(run_dir: str, delete: bool, forget: tuple[str, ...], all_registered: bool, wait: bool,
       as_json: bool) -> None:
    """List the step folders in RUN_DIR's store that no run directory's last run uses (old spec
    versions, steps recomputed after an upgrade), with their sizes and last use; --delete removes them.

    A dry run by default. It holds the run directory's and the store's locks while it looks and
    deletes, and is refused while a run holds either. In a store that several run directories
    share (run.cache_dir), a folder any of them uses is kept; each run registers its run directory
    in its store, and a registered one that cannot be read stops --delete."""
    from curate.diskspace import size_text
    from curate.gc import collect

    answer = jsonsummary.started()
    if answer is not None:
        answer.run_dir = str(Path(run_dir).absolute())
    survey = collect(Path(run_dir), delete=delete, forget_run_dirs=forget, all_registered=all_registered,
                     wait=None if wait else 0)
    if answer is not None:
        answer.result = survey.answer()
    if as_json:
        return  # printed once the exit code is known (main)
    console = _console()

    def say(text: str) -> None:
        console.print(for_rich(text))

    others = [use for use in survey.run_dirs if use.state != "this run directory"]
    kind = "its own store" if survey.own_store else "run.cache_dir"
    say(f"store {survey.store_dir} ({kind}; {len(survey.referenced)} step folder(s) in use"
        + (f", shared with {len(others)} other run director{'y' if len(others) == 1 else 'ies'})" if others
           else ")"))
    for use in others:
        say(f"  {use.run_dir}: {use.state}" + (f", {use.referenced} folder(s)" if use.state == "uses this store"
                                                 else f" ({use.detail})" if use.detail else ""))
    removable, kept = survey.removable, [f for f in survey.folders if f.kept_because]
    if not survey.folders:
        say("no step folder is unused: nothing to delete")
    for title, folders in (("deleted, unused" if survey.deleted else "unused (--delete removes them)", removable),
                           ("unused here, but kept", kept)):
        if not folders:
            continue
        say(f"{title}: {len(folders)} step folder(s), {size_text(sum(f.bytes for f in folders))}")
        for folder in sorted(folders, key=lambda f: (f.last_used or "", f.name))[:LISTED]:
            what = folder.label or "(step unknown)"
            state = "partial (left by a stopped run)" if folder.partial else \
                "finished" if folder.finished else "unfinished"
            used = f"last used {folder.last_used}" if folder.last_used_from == "registry" else \
                f"last written {folder.last_used}"
            say(f"  {folder.name}  {what:<20} {size_text(folder.bytes):>9}  {used}, {state}")
        if len(folders) > LISTED:
            say(f"  … and {len(folders) - LISTED} more (--json lists them all)")
    if kept:
        say(f"kept: {kept[0].kept_because}")
    for problem in survey.blocked:
        say(f"blocked: {problem}")
    if survey.left_alone:
        say(f"left alone (not step folders): {', '.join(survey.left_alone[:LISTED])}")
    if survey.deleted and (removable or survey.forgotten):
        say(f"freed {size_text(sum(f.bytes for f in removable))}" +
            (f"; forgot {', '.join(survey.forgotten)}" if survey.forgotten else ""))
    elif removable and not survey.blocked:
        say(f"dry run, nothing deleted: `curate gc {run_dir} --delete` frees "
            f"{size_text(sum(f.bytes for f in removable))}")
    elif removable:
        say("dry run, nothing deleted; --delete is refused until the blocks above are resolved")
