"""The processes a test starts, read from ``/proc``: which they are, and how much memory they hold."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        tree.setdefault(parent, []).append(int(entry))
    return tree


def descendants(root: int, ignore: frozenset[int] = frozenset()) -> frozenset[int]:
    """Every descendant of ``root``, less the processes in ``ignore`` and theirs."""
    tree, found = children(), set()
    stack = [pid for pid in tree.get(root, []) if pid not in ignore]
    while stack:
        pid = stack.pop()
        found.add(pid)
        stack += [child for child in tree.get(pid, []) if child not in ignore]
    return frozenset(found)


def tree_rss(root: int, ignore: frozenset[int] = frozenset()) -> tuple[int, list[tuple[int, str, int]]]:
    """Resident bytes of every descendant of ``root`` (the download worker and its processes),
    less the processes in ``ignore`` and theirs: each process's proportional share (``Pss``), so
    pages forked workers share copy-on-write count once for the tree, not once per process (a sum
    of ``VmRSS`` read 2.1-2.2 GiB under CI load where the tree held far less). With each process's
    share (pid, command line, bytes), to say which one held it."""
    total, shares = 0, []
    for pid in descendants(root, ignore):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    share = int(line.split()[1]) * 1024
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    total += share
                    shares.append((pid, command[:120], share))
        except OSError:
            pass
    return total, shares


@contextmanager
def peak_rss() -> Iterator[list]:
    """``[peak bytes, what held them]``: the peak resident bytes of the processes the block starts,
    and each one's share at that moment (a failed bound says which process grew); processes alive
    before it (a previous run's pool still exiting under load) are not counted."""
    peak: list = [0, []]
    done = threading.Event()
    before = descendants(os.getpid())

    def sample() -> None:
        while not done.wait(0.05):
            total, shares = tree_rss(os.getpid(), before)
            if total > peak[0]:
                peak[0], peak[1] = total, sorted(shares, key=lambda s: -s[2])

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()
