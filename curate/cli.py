"""The ``curate`` command line. Its exit codes are :data:`curate.errors.EXIT_CODES` (``curate --help``).

Errors that curate raises on purpose print as a short message; a traceback needs ``--debug``.
Plugins add sub-commands through ``curate_register_commands``.

Here: the group, the core commands added to it (a module each in :mod:`curate.commands`), and
:func:`main`, which turns how a command ended into its exit code and message.
"""

from __future__ import annotations

import logging
import sys
import warnings

import click

from curate import jsonsummary, stopping
from curate.commands.argv import WITHOUT_PLUGIN_COMMANDS, _command_of, _hoist_debug, _json_asked
from curate.commands.gc import gc
from curate.commands.inspect import inspect
from curate.commands.notices import _last_resort, _red, _show_warning, _stopped_by
from curate.commands.plan import plan
from curate.commands.plugins import plugins
from curate.commands.relocate import relocate
from curate.commands.run import run
from curate.commands.shared import _pm
# curate_train's commands take --allow-remote from here
from curate.commands.shared import allow_remote_option as allow_remote_option
from curate.commands.validate import validate
from curate.display import visible
from curate.errors import EXIT_CODES, CurateError, ResourceError, reported, stop_exit_code, unusable_path

DEBUG = {"on": False}


def _exit_codes_epilog() -> str:
    """``curate --help``'s list of exit codes, one a line (``\\b``: click keeps the lines)."""
    return "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=_exit_codes_epilog())
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="curate", prog_name="curate")
def cli(debug: bool) -> None:
    """curate: declarative, measurable curation of image–alt-text pretraining corpora.

    \b
    Typical use:
      curate validate specs/quickstart.yaml
      curate plan specs/quickstart.yaml
      curate run specs/quickstart.yaml
      curate inspect runs/quickstart
    """
    DEBUG["on"] = debug


# Added here, not by a decorator in their modules: under `python -m curate.cli` this module runs
# as __main__, and its group, not curate.cli's, is the one that runs.
cli.add_command(validate)
cli.add_command(plan)
cli.add_command(run)
cli.add_command(inspect)
cli.add_command(relocate)
cli.add_command(gc)
cli.add_command(plugins)


def _add_plugin_commands() -> None:
    try:
        pm = _pm()
    except CurateError as exc:
        click.echo(f"warning: {visible(exc, lines=True)}", err=True)
        return
    # One plugin at a time: a plugin whose hook raises (a module it imports is missing, say) is a
    # warning naming it; called as one hook, it took every command of the CLI down with it.
    for impl in pm.hook.curate_register_commands.get_hookimpls():
        try:
            impl.function(**{name: cli for name in impl.argnames if name == "cli"})
        except Exception as exc:
            pm.plugin_failed(impl.plugin_name, "curate_register_commands", exc)


def main(argv: list[str] | None = None) -> int:
    """``curate ARGS``; with ``run --json`` or ``validate --json``, the JSON answer is printed last,
    however the command ended (curate.jsonsummary)."""
    if argv is None:  # the program itself: under an ASCII locale, again in UTF-8 mode (curate.utf8mode)
        from curate.utf8mode import rerun_in_utf8_mode

        rerun_in_utf8_mode()
    jsonsummary.clear()
    code = 1  # a traceback (--debug) exits 1
    try:
        code = _main(argv)
    finally:
        jsonsummary.emit(code)
    return code


def _main(argv: list[str] | None) -> int:
    warnings.simplefilter("default")
    if argv is None:  # the program itself (a caller passing argv, such as a test, keeps its own display)
        warnings.showwarning = _show_warning
        logging.lastResort = _last_resort()
        # SIGTERM and SIGHUP stopped a run without a word, leaving its manifest "running" and its scratch
        # files; a SIGINT that landed in a DuckDB query was lost or reported as a failure (curate.stopping)
        stopping.install()
    argv, debug = _hoist_debug(list(argv if argv is not None else sys.argv[1:]))
    if _command_of(argv) not in WITHOUT_PLUGIN_COMMANDS:
        # Plugin sub-commands only when one may be asked for, listed (--help, `curate plugins`)
        # or reported broken: registering them imports each plugin's CLI module, ~0.07 s of
        # every `curate run`.
        _add_plugin_commands()
    try:
        try:
            cli.main(args=argv, prog_name="curate", standalone_mode=False)
        except BaseException as exc:  # a stop that DuckDB turned into an error is a stop still
            stop = stopping.as_stop(exc)
            if stop is None or isinstance(exc, click.exceptions.Exit):
                raise
            raise stop from exc
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C into Abort, so the KeyboardInterrupt branch below never saw it and
        # users were not told that a re-run resumes.
        if isinstance(exc.__cause__, KeyboardInterrupt):
            click.echo(_stopped_by(exc.__cause__), err=True)
            jsonsummary.ended(_stopped_by(exc.__cause__), exc.__cause__, stopped=True)
            return stop_exit_code(exc.__cause__)
        click.echo("aborted", err=True)
        jsonsummary.ended("aborted", exc, stopped=True)
        return 130
    except click.ClickException as exc:
        # A plugin command's message, or click's about a value given on the command line (an
        # unknown option is quoted as typed): shown with the escapes the other errors get.
        message = exc.format_message
        if jsonsummary.pending() is None and (command := _json_asked(argv)):  # refused before --json was read
            jsonsummary.expect(command)
        jsonsummary.ended(message(), exc)
        exc.format_message = lambda: visible(message(), lines=True)  # type: ignore[method-assign]
        exc.show()
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (SystemExit, BrokenPipeError) as exc:
        # rich and click end a write to a closed stdout with SystemExit(1), the code of a failed
        # run: `curate inspect R | grep -q x` failed at random under pipefail (curate.closedpipe)
        from curate.closedpipe import silence_stdout, stdout_closed

        if (isinstance(exc, BrokenPipeError) or exc.code == 1) and stdout_closed():
            silence_stdout()
            return 0
        raise
    except CurateError as exc:
        if debug:
            raise
        click.secho(f"error: {visible(exc, lines=True)}", **_red(), err=True)
        jsonsummary.ended(str(exc), exc)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        click.echo(_stopped_by(exc), err=True)
        jsonsummary.ended(_stopped_by(exc), exc, stopped=True)
        return stop_exit_code(exc)
    except BaseException as exc:  # a bug: say so plainly, keep the traceback behind --debug
        if debug or not reported(exc):
            raise
        # The machine's answer, not a bug: a full disk, a used-up quota or a file-size limit
        # wherever curate writes (its lock, manifest, views, report), a read-only run directory.
        resource = ResourceError.from_exception(exc)
        if resource is not None:
            click.secho(f"error: {visible(resource, lines=True)}", **_red(), err=True)
            jsonsummary.ended(str(resource), resource)
            return 1
        unusable = unusable_path(exc)
        if unusable is not None:
            click.secho(f"error: {visible(unusable.message)}", **_red(), err=True)
            click.echo(f"  hint: {unusable.hint}", err=True)
            jsonsummary.ended(str(unusable), exc)
            return 1
        click.secho(f"internal error: {type(exc).__name__}: {visible(exc, lines=True)}", **_red(), err=True)
        click.echo("re-run with --debug for the traceback, and please report it", err=True)
        jsonsummary.ended(f"internal error: {type(exc).__name__}: {exc}", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
