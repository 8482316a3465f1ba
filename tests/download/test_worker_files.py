"""The download step reads back two files of its own from a shard's folder: the worker's log
(whose last lines an error quotes) and its pid. A long download's log runs to GBs, and a store
may come from someone else: both reads are bounded and never wait on a pipe."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from curate_download.step import TAIL_BYTES, _tail, _wait_for_stale_worker


def test_the_tail_of_a_long_log_is_its_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "download.log"
    log.write_text("".join(f"line {i} of a long download\n" for i in range(200_000)))  # ~5.6 MB
    assert log.stat().st_size > 50 * TAIL_BYTES
    assert _tail(log) == " | ".join(f"line {i} of a long download" for i in range(199_995, 200_000))
    assert _tail(log, lines=1) == "line 199999 of a long download"
    short = tmp_path / "short.log"
    short.write_text("only\n")
    assert _tail(short) == "only"
    (tmp_path / "empty.log").write_text("")
    assert _tail(tmp_path / "empty.log") == "(empty log)"
    assert _tail(tmp_path / "missing.log") == "(no log)"


def test_a_log_line_longer_than_the_tail_is_shown_cut_not_dropped(tmp_path: Path) -> None:
    log = tmp_path / "download.log"
    log.write_text("x" * (3 * TAIL_BYTES) + "\n")
    assert _tail(log) == "x" * (TAIL_BYTES - 1)


def test_a_pipe_in_place_of_the_log_or_the_pid_is_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "download.log")
    os.mkfifo(tmp_path / "worker.pid")
    done: list[object] = []
    thread = threading.Thread(target=lambda: done.extend([_tail(tmp_path / "download.log"),
                                                          _wait_for_stale_worker(tmp_path, "download", 0)]),
                              daemon=True)
    thread.start()
    thread.join(20)
    assert done == ["(no log)", None]


def test_a_pid_file_that_is_no_pid_is_ignored_at_once(tmp_path: Path) -> None:
    (tmp_path / "worker.pid").write_text("7" * 10_000_000)  # 10 MB of digits: read 65 bytes of it
    assert _wait_for_stale_worker(tmp_path, "download", 0) is None
