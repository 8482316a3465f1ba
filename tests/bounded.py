"""Regression tests for text functions whose cost once grew faster than their input (catastrophic
regex backtracking, quadratic loops): the function runs on an adversarial input of about 10^5
characters in a subprocess that is killed after a generous timeout. Fixed, each call takes
milliseconds; before the fix, minutes to hours. No timing is asserted, only that it finished."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import cli_env

# Far above what the fixed code needs on a loaded CI machine, far below what the quadratic one did.
TIMEOUT = 60


def finishes(code: str, timeout: float = TIMEOUT) -> str:
    """Run ``code`` in a fresh Python; its stdout. Fails the test if it runs past ``timeout``
    seconds or raises."""
    try:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=cli_env(), capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running after {timeout} s (superlinear again?):\n{code}") from None
    assert done.returncode == 0, done.stderr
    return done.stdout
