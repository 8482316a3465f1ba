"""The ``curate`` command line. Its exit codes are :data:`curate.errors.EXIT_CODES` (``curate --help``).

Errors that curate raises on purpose print as a short message; a traceback needs ``--debug``.
Plugins add sub-commands through ``curate_register_commands``.
"""

from __future__ import annotations

import errno
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from curate import jsonsummary, stopping
from curate.commands.funnel import _print_funnel
from curate.commands.plan import plan
from curate.commands.run import run
from curate.commands.shared import _console, _pm
# curate_train's commands take --allow-remote from here
from curate.commands.shared import allow_remote_option as allow_remote_option
from curate.commands.validate import validate
from curate.display import VisibleFormatter, for_rich, visible
from curate.errors import EXIT_CODES, CurateError, ResourceError, reported, stop_exit_code, stop_words

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


cli.add_command(validate)
cli.add_command(plan)
cli.add_command(run)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True,
              help="Print the manifest as JSON, with \"damaged\": the stored files' check "
                   "([{\"step\", \"problem\"}], read whole with --verify, which exits non-zero on damage), "
                   "\"lock_held\" (a live process holds the run directory now) and \"state\": \"status\", "
                   "but \"stopped\" where that says \"running\" and no process holds the run (killed).")
@click.option("--verify", is_flag=True,
              help="Check every stored file's fingerprint (reads them all), not only that it is there.")
def inspect(run_dir: str, as_json: bool, verify: bool) -> None:
    """Show a run's funnel: rows per step, drop reasons, timings; and which stored files are gone."""
    from curate.lock import held
    from curate.runstore import read_manifest
    from curate.storecheck import stored_problems

    manifest = read_manifest(Path(run_dir))
    damaged = stored_problems(manifest, verify)
    locked = held(Path(run_dir))
    if as_json:
        # what the text view says besides the manifest, under keys the manifest does not use: the
        # stored files' check (read whole with --verify), whether a live process holds the run
        # directory's lock, and the judgement the text view prints as the status ("status" stays
        # the manifest's: a run killed by SIGKILL or out of memory says "running" there for good)
        shown = {**manifest, "damaged": [{"step": label, "problem": problem} for label, problem in damaged],
                 "verified": verify, "lock_held": locked, "state": _state(manifest, locked)}
        click.echo(json.dumps(shown, indent=2))
        _refuse_damaged(run_dir, verify, damaged, "the JSON's \"damaged\" lists them")
        return
    console = _console()
    _print_funnel(manifest, console)
    status = manifest.get("status")
    if _state(manifest, locked) == "stopped":
        status = "stopped: no process runs it now (killed, or its machine went down); run it again to resume"
    console.print(for_rich(f"spec hash {manifest.get('spec_hash')}, started {manifest.get('started_at')}, "
                           f"status {status}"))
    if where := manifest.get("executor_where") or manifest.get("executor"):  # older runs: the name
        console.print(for_rich(f"executor: {where}"))
    if manifest.get("error") and manifest.get("status") != "complete":
        # a line at a time, its hint on a line of its own (made visible whole, it showed \x0a); the
        # lines after the first indented, so none looks like one of inspect's own
        first, *rest = f"error: {manifest['error']}".splitlines()
        for line in [first, *(f"  {line}" for line in rest)]:
            console.print(for_rich(line))
    if manifest.get("views_error"):  # curate.views
        console.print(for_rich(f"its views were not written ({manifest['views_error']}): `curate relocate "
                               f"{run_dir}` writes them"))
    recorded = manifest.get("run_dir")
    if isinstance(recorded, str) and Path(recorded).resolve() != Path(run_dir).resolve():
        console.print(for_rich(f"this run directory was written at {recorded}: the views of its curate.duckdb "
                               f"still read the files there; `curate relocate {run_dir}` points them here"))
    for output in manifest.get("outputs", []):
        console.print(f"output: {for_rich(output['format'])} → {for_rich(output['path'])}")
    if damaged:
        for label, problem in damaged:
            console.print(for_rich(f"step '{label}' is not as it was stored: {problem}"))
        console.print(for_rich(f"the run directory's views read these files and fail; `curate run --resume {run_dir}` "
                               f"recomputes what is missing"))
    for output in manifest.get("stale_outputs", []):  # curate.staleoutputs
        run = output["written_by"]
        console.print(for_rich(f"stale output: {output['path']} holds the rows of an earlier run (started "
                               f"{run.get('started_at')}, spec hash {str(run.get('spec_hash'))[:12]}), not this "
                               f"spec's"))
    _refuse_damaged(run_dir, verify, damaged, "above")


def _state(manifest: dict[str, Any], locked: bool) -> Any:
    """The manifest's status, but "stopped" for a run it says is running that no live process
    holds: one killed (SIGKILL, out of memory, its machine gone) never wrote that it stopped."""
    status = manifest.get("status")
    return "stopped" if status == "running" and not locked else status


def _refuse_damaged(run_dir: str, verify: bool, damaged: list[tuple[str, str]], listed: str) -> None:
    """``inspect --verify`` (text or JSON) found damage: scripts read its answer from the exit code."""
    if verify and damaged:
        from curate.errors import StoredFilesChanged

        steps = f"{len(damaged)} finished step{'s' if len(damaged) > 1 else ''}"
        many = len(damaged) > 1
        raise StoredFilesChanged(f"{steps} of {run_dir} {'are' if many else 'is'} not as stored ({listed})",
                                 f"curate run --resume {run_dir} recomputes {'them' if many else 'it'}")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--store", type=click.Path(file_okay=False), default=None,
              help="Where the run's store is now, when it was outside the run directory.")
def relocate(run_dir: str, store: str | None) -> None:
    """Point a moved, copied or unpacked run directory's manifest and views at where it now lies."""
    from curate.relocate import relocate as relocate_run
    from curate.storecheck import stored_problems

    manifest, changed = relocate_run(Path(run_dir), Path(store) if store else None)
    console = _console()
    for change in changed or ["nothing had moved; the views are written again"]:
        console.print(for_rich(change))
    for label, problem in stored_problems(manifest):
        console.print(for_rich(f"step '{label}' is not as it was stored: {problem}"))
    console.print(for_rich(f"views: {Path(run_dir) / 'curate.duckdb'}"))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, with params schemas.")
def plugins(as_json: bool) -> None:
    """List installed plugins, their versions and what they provide."""
    pm = _pm()
    registries = pm.registries()
    data: dict[str, Any] = {"plugins": [], "failed": pm.failed,
                            "clashes": {kind: dict(r.clashes) for kind, r in registries.items() if r.clashes}}
    for name, info in sorted(pm.infos.items()):
        entry: dict[str, Any] = {"name": name, "module": info.module, "distribution": info.distribution,
                                 "version": info.version}
        for kind, registry in registries.items():
            provided = {key: cls for key, cls in registry.classes.items() if registry.owners[key] == name}
            entry[kind + "s"] = {
                key: {"description": (cls.description or (cls.__doc__ or "").strip().split("\n")[0]),
                      "params": _params_schema(cls.Params),
                      **({"requires": list(cls.requires), "extra": cls.extra} if getattr(cls, "requires", ()) else {})}
                for key, cls in sorted(provided.items())
            }
        entry.update(_hooks_of(pm, name))
        data["plugins"].append(entry)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    console = _console()
    for entry in data["plugins"]:
        console.print(f"[bold]{entry['name']}[/bold] {entry['version'] or ''}  ({entry['module']})")
        for kind in ("steps", "sources", "sinks", "executors"):
            for key, info in entry.get(kind, {}).items():
                props = info["params"].get("properties", {})
                params = ", ".join(f"{p}" + (f"={v['default']!r}" if "default" in v else "") for p, v in props.items())
                needs = f" [dim](needs curate\\[{info['extra']}])[/dim]" if info.get("extra") else ""
                console.print(f"  {kind[:-1]:8} [cyan]{key}[/cyan]{needs}: {info['description']}")
                if params:
                    console.print(f"           params: {params}")
        for hook, keys in entry.get("provides", {}).items():
            console.print(f"  {hook}: [cyan]{', '.join(keys)}[/cyan]")
        if entry.get("commands"):
            console.print(f"  commands  [cyan]{', '.join(entry['commands'])}[/cyan]")
        others = [hook for hook in entry["hooks"] if hook not in _LISTED_HOOKS and hook not in entry.get("provides", {})]
        if others:
            console.print(f"  [dim]hooks: {', '.join(others)}[/dim]")
    for name, error in pm.failed.items():
        console.print(f"[red]failed[/red] {for_rich(name)}: {for_rich(error)}")
    for kind, registry in registries.items():
        for key in sorted(registry.clashes):
            console.print(f"[red]clash[/red] {for_rich(str(registry.clash_error(key)))}")


def _params_schema(params: Any) -> dict[str, Any]:
    """The params' JSON schema with every default, those made by a ``default_factory`` (a list or
    dict) too: pydantic leaves them out, and a param without a default reads as required."""
    from pydantic_core import to_jsonable_python

    schema = params.model_json_schema()
    for name, field in params.model_fields.items():
        prop = schema.get("properties", {}).get(field.alias or name)
        if prop is not None and "default" not in prop and field.default_factory is not None:
            prop["default"] = to_jsonable_python(field.get_default(call_default_factory=True))
    return schema


# Hooks whose results `curate plugins` shows as registries or commands (the rest it lists by name).
_LISTED_HOOKS = {"curate_register_steps", "curate_register_sources", "curate_register_sinks",
                 "curate_register_executors", "curate_register_commands"}


def _hooks_of(pm: Any, name: str) -> dict[str, Any]:
    """What one plugin hooks into: every hook it implements, the sub-commands it adds, and, for
    hooks other plugins declare (``curate_mix_strategies``…), the names of the classes it returns."""
    plugin = pm.pm.get_plugin(name)
    hooks = sorted(caller.name for caller in pm.pm.get_hookcallers(plugin) or [])
    found: dict[str, Any] = {"hooks": hooks, "commands": [], "provides": {}}
    for caller in pm.pm.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            if caller.name == "curate_register_commands":
                group = click.Group()
                try:
                    impl.function(**{arg: group for arg in impl.argnames if arg == "cli"})
                except Exception:  # noqa: BLE001 - reported where the CLI adds commands
                    continue
                found["commands"] = sorted(group.commands)
            elif caller.name.startswith("curate_") and caller.name not in _LISTED_HOOKS and not impl.argnames:
                try:
                    result = impl.function()
                except Exception:  # noqa: BLE001 - a listing must not fail on one plugin
                    continue
                names = [getattr(item, "name", None) for item in result or [] if isinstance(item, type)]
                if names and all(names):
                    found["provides"][caller.name] = sorted(names)
    return found


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


def _hoist_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``--debug`` anywhere before ``--`` (``curate run x.yaml --debug``, as the error message
    suggests, and after plugin sub-commands too) moves to the group, which owns the flag."""
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end]
    if not debug:
        return argv, False
    rest = [arg for arg in argv[:end] if arg != "--debug"] + argv[end:]
    return ["--debug", *rest], True


# Core commands that neither run nor list a plugin's sub-commands.
WITHOUT_PLUGIN_COMMANDS = frozenset({"run", "validate", "plan", "inspect", "relocate"})


def _command_of(argv: list[str]) -> str | None:
    """The sub-command ``argv`` names (its first word that is not one of the group's flags)."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def _json_asked(argv: list[str]) -> str | None:
    """``run`` or ``validate`` where ``argv`` asks it for ``--json``."""
    command = _command_of(argv)
    end = argv.index("--") if "--" in argv else len(argv)
    return command if command in ("run", "validate") and "--json" in argv[:end] else None


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """curate's own warnings (a plugin skipped, a stored step recomputed) as one line, as its other
    notices are; Python's format added the file, line and source line of the warn() call."""
    if category.__module__.split(".")[0].startswith("curate"):
        click.echo(f"curate: warning: {visible(message, lines=True)}", err=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def _last_resort() -> logging.Handler:
    """Python's handler for records no handler takes (plugins' warnings: ``download: … refused``),
    the same but for :class:`curate.display.VisibleFormatter`."""
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(VisibleFormatter())
    return handler


def _red() -> dict[str, Any]:
    """click.secho's styling of error text: none where NO_COLOR is set to anything
    (https://no-color.org), as rich's output already honours; it coloured it on a terminal regardless
    (and without a colour it still added a reset escape)."""
    import os

    return {"reset": False} if os.environ.get("NO_COLOR") else {"fg": "red"}


def _stopped_by(exc: KeyboardInterrupt) -> str:
    if getattr(exc, "after_complete", False):  # outputs and manifest written: only the report was not
        return f"{stop_words(exc)} while reporting on the run, which had completed (its outputs are " \
            "written); run the same command again to write its report"
    resume = getattr(exc, "curate_resume", "run the same command again to resume")
    return f"{stop_words(exc)}; {resume}"


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
        if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            where = visible(str(exc.filename or "a file"))
            hint = ("curate writes into the run directory (its lock, manifest, views and report) and the "
                    "store: run where you may write, or copy the run directory there first")
            click.secho(f"error: cannot use {where}: {exc.strerror}", **_red(), err=True)
            click.echo(f"  hint: {hint}", err=True)
            jsonsummary.ended(f"cannot use {exc.filename or 'a file'}: {exc.strerror}\n  hint: {hint}", exc)
            return 1
        click.secho(f"internal error: {type(exc).__name__}: {visible(exc, lines=True)}", **_red(), err=True)
        click.echo("re-run with --debug for the traceback, and please report it", err=True)
        jsonsummary.ended(f"internal error: {type(exc).__name__}: {exc}", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
