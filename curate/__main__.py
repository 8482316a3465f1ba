"""``python -m curate``: the same command as ``curate``, for environments without the script on PATH."""

import sys

from curate.cli import main

sys.exit(main())
