"""run.min_free_disk: a run stops before it fills the disk (a shard write, a DuckDB spill), says
so, keeps what it finished, and a re-run with room resumes to the same outputs."""

from __future__ import annotations

import shutil

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from curate.diskspace import DEFAULT_MIN_FREE_DISK, min_free_bytes, parse_size
from curate.spec import Spec
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

TABLE = pl.DataFrame({"url": [f"https://a/{i % 700}.jpg" for i in range(3000)],
                      "alt_text": [f"text {i % 900}" for i in range(3000)]})
STEPS = [{"step": "normalize_text"}, {"step": "exact_dedup", "params": {"columns": ["url"]}},
         {"step": "filter", "params": {"where": "length(alt_text) > 5"}}]


def spec(**run) -> dict:
    return {"name": "disk", "source": {"path": "data.parquet"}, "steps": STEPS,
            "outputs": [{"format": "parquet", "path": "out.parquet"}],
            "run": {"dir": "run", "report": False, "shard_size": 500, **run}}


def test_a_run_stops_before_storing_past_min_free_disk_and_resumes_with_room(curate_main, write_spec, workdir):
    write_spec(spec(), table=TABLE, name="clean.yaml")
    assert curate_main("run", "clean.yaml", "--quiet", "--run-dir", "clean").code == 0
    write_spec(spec(min_free_disk="1000TB"), name="full.yaml")
    result = curate_main("run", "full.yaml", "--quiet")
    assert result.code == 1, result
    assert "at or under run.min_free_disk (1000000.0 GB): curate stopped step 'source' before storing shard 0, " \
           "rather than fill it" in result.stderr
    assert "Traceback" not in result.stderr and not (workdir / "run" / "out.parquet").exists()
    write_spec(spec(min_free_disk="0"), name="room.yaml")
    result = curate_main("run", "room.yaml", "--quiet")
    assert result.code == 0, result
    assert (workdir / "run" / "out.parquet").read_bytes() == (workdir / "clean" / "out.parquet").read_bytes()
    # every step cached, nothing to store: the output is what would be written
    (workdir / "run" / "out.parquet").unlink()
    result = curate_main("run", "full.yaml", "--quiet")
    assert result.code == 1, result
    assert "curate stopped before writing output 'out.parquet', rather than fill it" in result.stderr


def test_duckdb_spills_no_further_than_min_free_disk_leaves(curate_main, write_spec, workdir):
    """A query that multiplies rows wrote 6.8 GB in 30 s (DuckDB sorting to RUN_DIR/tmp/duckdb)."""
    keep = shutil.disk_usage(workdir).free - 64 * 10**6  # DuckDB may spill about 64 MB
    write_spec({"name": "spill", "source": {"path": "data.parquet"},
                "steps": [{"step": "sql", "params": {"query": "SELECT * FROM input, range(100000000000)"}}],
                "run": {"dir": "run", "report": False, "min_free_disk": str(keep)}}, table=TABLE.head(3))
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 1, result
    assert "run.min_free_disk" in result.stderr and "Traceback" not in result.stderr
    spilled = sum(f.stat().st_size for f in (workdir / "run").rglob("*") if f.is_file())
    assert spilled < 1 * 10**9, spilled


@pytest.mark.parametrize("value", ["lots", "-1MB", "1.5 XB", True, -3])
def test_a_size_that_is_no_size_is_a_spec_error(curate_main, write_spec, workdir, value):
    write_spec(spec(min_free_disk=value), table=TABLE)
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2, result
    assert "min_free_disk" in result.stderr


UNITS = {"": 1, "B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


@given(count=st.integers(0, 10**6), unit=st.sampled_from(sorted(UNITS)), space=st.sampled_from(["", " "]))
def test_parse_size_reads_a_count_and_a_unit(count, unit, space):
    assert parse_size(f"{count}{space}{unit}") == count * UNITS[unit]
    assert parse_size(f"{count}{space}{unit.upper()}") == count * UNITS[unit]


def test_the_default_leaves_spec_hashes_as_they_were():
    default = Spec.model_validate({"source": {"path": "x"}})
    assert default.run.min_free_disk == DEFAULT_MIN_FREE_DISK
    assert "min_free_disk" not in default.canonical_json()
    assert "min_free_disk" in Spec.model_validate({"source": {"path": "x"}, "run": {"min_free_disk": "2GB"}}
                                                  ).canonical_json()


def test_an_untrusted_spec_leaves_at_least_the_default_free():
    default = parse_size(DEFAULT_MIN_FREE_DISK)
    assert min_free_bytes("0", untrusted=True) == default
    assert min_free_bytes("0", untrusted=False) == 0
    assert min_free_bytes("5GB", untrusted=True) == 5 * 10**9
