"""Outputs an earlier run wrote and the last run did not are named, never passed off as the spec's
(curate.staleoutputs).

A probe changed a spec's filter and re-ran it on a disk too full for ``curated.csv``: the run failed
with a clear error, but left ``curated.parquet`` with the new spec's rows beside ``curated.csv`` with
the old spec's, and nothing but a "failed" manifest without outputs to tell them apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from curate import hookimpl
from curate.sink import Sink
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

TABLE = pl.DataFrame({"url": [f"u{i}" for i in range(20)], "alt_text": ["x" * (i + 1) for i in range(20)]})


class Full(Sink):
    """Fails as a disk with no room left does."""

    format = "full"
    path_kind = "file"

    def write(self, table):
        raise OSError(28, "No space left on device")


class FullDisk:
    @hookimpl
    def curate_register_sinks(self):
        return [Full]


def spec(longer_than: int, outputs: list[tuple[str, str]]) -> dict:
    return {"name": "s", "source": {"path": "data.parquet"},
            "steps": [{"step": "filter", "params": {"where": f"length(alt_text) > {longer_than}"}}],
            "outputs": [{"format": fmt, "path": path} for fmt, path in outputs], "run": {"dir": "run", "report": False}}


def manifest(workdir: Path) -> dict:
    return json.loads((workdir / "run" / "manifest.json").read_text())


def test_outputs_left_by_an_earlier_run_are_listed_said_and_shown(curate_main, write_spec, workdir, register_plugin):
    register_plugin(FullDisk(), "fulldisk")
    both = [("parquet", "curated.parquet"), ("csv", "curated.csv")]
    write_spec(spec(5, both), table=TABLE)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    first = manifest(workdir)
    assert "stale_outputs" not in first

    # The filter changes, and the run fails between its two outputs.
    write_spec(spec(10, [("parquet", "curated.parquet"), ("full", "full.bin"), ("csv", "curated.csv")]))
    with pytest.warns(Warning) as warned:
        failed = curate_main("run", "spec.yaml", "--quiet")
    assert failed.code == 1 and "No space left" in failed.stderr, failed
    assert pl.read_parquet(workdir / "run" / "curated.parquet").height == 10  # the new spec's rows
    assert pl.read_csv(workdir / "run" / "curated.csv").height == 15  # still the old spec's
    second = manifest(workdir)
    assert second["status"] == "failed"
    assert [Path(o["path"]).name for o in second["outputs"]] == ["curated.parquet"]
    (stale,) = second["stale_outputs"]
    assert Path(stale["path"]).name == "curated.csv"
    assert stale["written_by"]["spec_hash"] == first["spec_hash"] != second["spec_hash"]
    said = "\n".join(str(w.message) for w in warned)
    assert "curated.csv" in said and "earlier run's rows" in said and "failed before writing it again" in said

    shown = curate_main("inspect", "run")
    assert shown.code == 0 and "stale output:" in shown.stdout and "curated.csv" in shown.stdout, shown

    # A later failure still knows which run wrote it; a spec without the output says it no longer writes it.
    write_spec(spec(10, [("parquet", "curated.parquet")]))
    with pytest.warns(Warning) as warned:
        assert curate_main("run", "spec.yaml", "--quiet").code == 0
    third = manifest(workdir)
    assert [o["written_by"]["spec_hash"] for o in third["stale_outputs"]] == [first["spec_hash"]]
    assert "no longer writes it" in "\n".join(str(w.message) for w in warned)

    # Written again: nothing stale; deleted by hand: nothing stale either.
    write_spec(spec(10, both))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    assert "stale_outputs" not in manifest(workdir)
    assert pl.read_csv(workdir / "run" / "curated.csv").height == 10


def test_a_run_directory_copied_elsewhere_names_no_stale_output(curate_main, write_spec, workdir):
    """Its manifest names the original's files: those are another run directory's, not stale here."""
    import shutil

    write_spec(spec(5, [("parquet", "curated.parquet"), ("csv", "curated.csv")]), table=TABLE)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    shutil.copytree(workdir / "run", workdir / "copy", symlinks=True)
    (workdir / "copy" / "curated.csv").unlink()
    write_spec(spec(5, [("parquet", "curated.parquet")]))
    assert curate_main("run", "spec.yaml", "--run-dir", "copy", "--quiet").code == 0
    assert "stale_outputs" not in json.loads((workdir / "copy" / "manifest.json").read_text())



class Flaky(Sink):
    """Writes its file, unless a file named ``fail`` lies in the working directory."""

    format = "flaky"
    path_kind = "file"

    def write(self, table):
        if Path("fail").exists():
            raise OSError(28, "No space left on device")
        self.ctx.output_path.write_bytes(b"x")
        return {}


class FlakyDisk:
    @hookimpl
    def curate_register_sinks(self):
        return [Flaky]


def test_a_failed_run_of_the_same_spec_leaves_its_outputs_unflagged(curate_main, write_spec, workdir,
                                                                    register_plugin):
    """The same spec wrote the same rows: its earlier outputs are its own, not stale."""
    register_plugin(FlakyDisk(), "flakydisk")
    write_spec(spec(5, [("parquet", "curated.parquet"), ("flaky", "f.bin"), ("csv", "curated.csv")]), table=TABLE)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    (workdir / "fail").touch()
    assert curate_main("run", "spec.yaml", "--quiet").code == 1
    assert manifest(workdir)["status"] == "failed" and "stale_outputs" not in manifest(workdir)


def test_a_cached_rerun_leaves_outputs_with_the_same_bytes_untouched(curate_main, write_spec, workdir):
    """A no-op re-run gave every output a new mtime with the same bytes: `make` rebuilt what
    depends on them, `rsync -a` sent them again (automation probe). A changed output is written."""
    import os

    files = ["curated.parquet", "curated.csv", "curated.jsonl"]
    write_spec(spec(5, [("parquet", files[0]), ("csv", files[1]), ("jsonl", files[2])]), table=TABLE)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    old = 1_000_000_000
    for name in [*files, "spec.yaml"]:
        os.utime(workdir / "run" / name, ns=(old, old))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    assert all(r["cached"] for r in manifest(workdir)["steps"])
    assert {name: (workdir / "run" / name).stat().st_mtime_ns for name in [*files, "spec.yaml"]} == \
        dict.fromkeys([*files, "spec.yaml"], old)
    assert not [p.name for p in (workdir / "run").iterdir() if p.name.endswith(".tmp")]
    write_spec(spec(15, [("parquet", files[0]), ("csv", files[1]), ("jsonl", files[2])]))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    assert all((workdir / "run" / name).stat().st_mtime_ns != old for name in [*files, "spec.yaml"])
    assert pl.read_parquet(workdir / "run" / files[0]).height == 5
