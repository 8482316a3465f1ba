"""benchmarks/gpu_parts: the session runs every part by name; one can be run alone; an unknown
name is a clear error, not a traceback. (The parts themselves are smoke-tested with
``python -m benchmarks.gpu_parts NAME --smoke``: minutes, not for the suite.)"""

from __future__ import annotations

import subprocess
import sys

from benchmarks.gpu_parts import load_part, part_names


def test_parts_are_listed_by_name_and_follow_the_interface():
    names = part_names()
    assert names == sorted(names) and "cores" in names
    assert not any(name.startswith("_") for name in names)
    for name in names:
        part = load_part(name)
        assert isinstance(part.SECONDS, int) and 0 < part.SECONDS <= 200, name
        assert callable(part.run), name


def test_the_cli_lists_parts_and_refuses_an_unknown_one():
    listed = subprocess.run([sys.executable, "-m", "benchmarks.gpu_parts"], capture_output=True, text=True)
    assert listed.returncode == 0 and listed.stdout.split() == part_names()
    unknown = subprocess.run([sys.executable, "-m", "benchmarks.gpu_parts", "nope", "--smoke"],
                             capture_output=True, text=True)
    assert unknown.returncode == 2
    assert "no GPU part 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr
