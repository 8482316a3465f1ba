"""What :func:`curate.cli.main` reads from the command line before click does: ``--debug`` wherever
it stands, the sub-command named, and whether ``run``, ``validate`` or ``gc`` is asked for ``--json``."""

from __future__ import annotations


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
WITHOUT_PLUGIN_COMMANDS = frozenset({"run", "validate", "plan", "inspect", "relocate", "gc"})


def _command_of(argv: list[str]) -> str | None:
    """The sub-command ``argv`` names (its first word that is not one of the group's flags)."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def _json_asked(argv: list[str]) -> str | None:
    """``run``, ``validate`` or ``gc`` where ``argv`` asks it for ``--json``."""
    command = _command_of(argv)
    end = argv.index("--") if "--" in argv else len(argv)
    return command if command in ("run", "validate", "gc") and "--json" in argv[:end] else None
