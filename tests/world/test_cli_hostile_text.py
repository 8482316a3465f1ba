"""``curate world`` prints paths and what clients send as text: their control characters and bidi
overrides show as escapes, never reach the terminal as they are."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from curate_world.generate import World

from tests.conftest import cli_env
from tests.core.test_cli_hostile_text import assert_shown_not_run

# A file name cannot hold '/', so no [link=...] here; '[bold]' stands for markup.
NAME = "w\x1b[2Jx\r\u202ey[bold]z"
SHOWN = "w\\x1b[2Jx\\x0d\\u202ey[bold]z"


def test_generate_shows_the_world_directory_with_escapes(tmp_path: Path, capsys) -> None:
    from curate.cli import main

    code = main(["world", "generate", str(tmp_path / NAME), "--n", "6", "--eval-n", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"world in {tmp_path}/{SHOWN} (" in out
    assert '"rows": 6' in out  # the counts, indented JSON, as before
    assert_shown_not_run(out)


def test_serve_verbose_logs_a_hostile_request_line_with_escapes(small_world: World, tmp_path: Path) -> None:
    server = subprocess.Popen([sys.executable, "-m", "curate.cli", "world", "serve", str(small_world.dir), "--verbose"],
                              cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()  # the last line it prints once serving
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(b"GET /no/" + NAME.encode() + b"[link=http://x]y[/link] HTTP/1.0\r\n\r\n")
            while connection.recv(65536):
                pass
    finally:
        server.terminate()  # SIGTERM: the server shuts down cleanly
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr
    # The request line's UTF-8 reaches the log as Latin-1 (http.server's reading): U+202E is
    # three characters there, the middle one a C1 control. (The CR splits the line into four
    # words: a bad request, 400, and logged all the same.)
    assert '"GET /no/w\\x1b[2Jx\\x0d\u00e2\\x80\u00aey[bold]z[link=http://x]y[/link] HTTP/1.0" 400' in stderr, stderr
    assert_shown_not_run(stderr)
    assert not any("\x80" <= char <= "\x9f" for char in stderr)
