"""Exit codes a script acts on differently are distinct, and ``curate --help`` lists them all.

A held lock, unreadable input data, a damaged run and a bad spec all exited 2: a cron wrapper could
not tell "skip, another run is going" from "page someone, the spec is broken" (automation probe).
"""

from __future__ import annotations

import polars as pl

from curate.errors import EXIT_CODES
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

TABLE = pl.DataFrame({"url": [f"u{i}" for i in range(20)], "alt_text": [f"text {i}" for i in range(20)]})
SPEC = {"name": "s", "source": {"path": "data.parquet"},
        "steps": [{"step": "filter", "params": {"where": "length(alt_text) > 2"}}],
        "run": {"dir": "run", "report": False}}


def test_lock_held_data_spec_and_damage_exit_with_codes_of_their_own(curate_main, write_spec, workdir):
    from curate.lock import locked

    write_spec({**SPEC, "steps": [{"step": "filtr"}]}, table=TABLE, name="bad.yaml")
    assert curate_main("validate", "bad.yaml").code == 2

    (workdir / "rows.csv").write_text('url,alt_text\n"http://a,b\n')  # a quote that never closes
    write_spec({**SPEC, "source": {"format": "csv", "path": "rows.csv"}, "run": {"dir": "csvrun"}},
               name="baddata.yaml")
    bad_data = curate_main("run", "baddata.yaml", "--quiet")
    assert bad_data.code == 2, bad_data  # not yet a code of its own: many places raise SourceError

    write_spec(SPEC, table=TABLE)
    (workdir / "run").mkdir()
    with locked([(workdir / "run", "run directory")]):  # another run holds it
        refused = curate_main("run", "spec.yaml", "--quiet")
    assert refused.code == 75 and "in use by another curate run" in refused.stderr, refused

    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    shard = next((workdir / "run" / "steps").glob("*filter/data/*.parquet"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert curate_main("inspect", "run", "--verify").code == 3


def test_help_lists_every_exit_code(curate_main):
    shown = curate_main("--help")
    assert shown.code == 0
    for code, meaning in EXIT_CODES:
        assert f"{code:>3}  {meaning}" in shown.stdout, code
