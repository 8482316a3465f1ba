"""Whose a file is and who this process is, by name, for messages about shared folders."""

from __future__ import annotations

import os
import pwd
from pathlib import Path


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no entry here (a container, an NFS share from elsewhere)
        return f"uid {uid}"


def owner(path: Path | str) -> str:
    """The name of the user who owns ``path`` (not followed), '?' where it is gone."""
    try:
        return _name(os.lstat(path).st_uid)
    except OSError:
        return "?"


def me() -> str:
    """The name of the user this process writes files as."""
    return _name(os.geteuid())
