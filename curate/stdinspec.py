"""``curate run -`` / ``curate validate -`` / ``curate plan -``: the spec comes on stdin, from a
pipeline that renders it (``envsubst < spec.tmpl | curate run - --run-dir DIR``; automation probe F12c).

A spec from stdin has no file: its relative paths (``source.path`` and the like) resolve against
the working directory, where ``run.dir`` and ``--run-dir`` always do. Its read is bounded as a spec
file's is (:data:`curate.yaml_limits.MAX_SPEC_BYTES`): an endless stream is refused, never held.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

STDIN = "-"
# How problems name it (``<stdin>:3: steps[0].step: …``).
STDIN_NAME = "<stdin>"


def load_stdin_spec() -> Any:
    """The spec on stdin, loaded as :func:`curate.spec.load_spec` loads a file, with no origin."""
    from curate.errors import UsageError
    from curate.spec import load_spec_text, spec_text

    stream = getattr(sys.stdin, "buffer", None)  # None: started with stdin closed
    if stream is None:
        raise UsageError("the spec is '-' (read it from stdin), but this process has no stdin",
                         "pipe the spec in (curate run - < spec.yaml), or give its file")
    text = spec_text(stream, STDIN_NAME, "the spec on stdin")
    loaded = load_spec_text(text, Path(STDIN_NAME))
    loaded.origin = None  # relative paths resolve against the working directory; the manifest names no file
    return loaded
