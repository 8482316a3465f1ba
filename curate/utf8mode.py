"""Under a true ASCII locale (``LC_ALL=C`` with Python's locale coercion and UTF-8 mode turned off:
``PYTHONCOERCECLOCALE=0 PYTHONUTF8=0``) Python names files in ASCII: a spec's ``données.csv`` could
not be looked for at all (``Path.exists`` said False: "does not exist"), and a name read from the
command line or a folder listing came as surrogate escapes that Polars and DuckDB refuse (an
"internal error: Object does not have a .read() method"). Polars and DuckDB always name files in
UTF-8, as the spec is written. So curate runs itself again in Python's UTF-8 mode, which names
files in UTF-8 whatever the locale (automation probe F15); its child processes inherit it.
"""

from __future__ import annotations

import codecs
import os
import sys

# Set in the command run again: it never runs itself a second time.
AGAIN = "CURATE_UTF8_MODE_SET"


def in_ascii_locale() -> bool:
    return codecs.lookup(sys.getfilesystemencoding()).name == "ascii" and not sys.flags.utf8_mode


def rerun_in_utf8_mode() -> None:
    """Replace this process (same pid, arguments and open files, stdin too) with the same command
    in UTF-8 mode, when it names files in ASCII. Where that cannot be done, carry on as before."""
    if os.name != "posix" or not in_ascii_locale() or os.environ.get(AGAIN) or not sys.executable:
        return
    before = os.environ.get("PYTHONUTF8")
    os.environ.update({AGAIN: "1", "PYTHONUTF8": "1"})
    try:
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    except OSError:
        del os.environ[AGAIN]
        if before is None:
            del os.environ["PYTHONUTF8"]
        else:
            os.environ["PYTHONUTF8"] = before
