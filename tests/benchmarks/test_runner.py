"""The benchmark runner and its measuring helpers (not the benchmarks themselves: those take
minutes; ``python -m benchmarks`` runs them)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from benchmarks import run as runner
from benchmarks import synthetic
from benchmarks.measure import CommandFailed, machine_facts, measure


@pytest.fixture
def bench_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable package ``fakebench`` holding benchmark modules, removed afterwards."""
    package = tmp_path / "fakebench"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "bench_good.py").write_text(textwrap.dedent('''
        """Adds numbers.

        More detail that --list leaves out."""

        def run(scale):
            return {"headline": {"sum": 3 if scale == "small" else 30},
                    "table": [{"scale": scale, "seconds": 0.5}]}
    '''))
    (package / "bench_broken.py").write_text("def run(scale):\n    raise ValueError('no data')\n")
    (package / "bench_norun.py").write_text("x = 1\n")
    (package / "helper.py").write_text("raise RuntimeError('not a benchmark, never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in [m for m in sys.modules if m == "fakebench" or m.startswith("fakebench.")]:
        del sys.modules[name]


def test_discovers_bench_modules_by_name(bench_package: Path) -> None:
    found = runner.discover(bench_package, "fakebench")
    assert [b.name for b in found] == ["broken", "good", "norun"]
    assert found[1].module == "fakebench.bench_good"


def test_the_repository_benchmarks_are_found() -> None:
    names = [b.name for b in runner.discover()]
    assert "metadata" in names


def test_select_only_and_unknown_names(bench_package: Path) -> None:
    found = runner.discover(bench_package, "fakebench")
    assert [b.name for b in runner.select(found, ["good"])] == ["good"]
    assert runner.select(found, None) == found
    with pytest.raises(SystemExit, match="unknown benchmark.*nope.*available: broken, good, norun"):
        runner.select(found, ["nope"])


def test_run_one_wraps_the_result_with_machine_facts(bench_package: Path) -> None:
    good = runner.select(runner.discover(bench_package, "fakebench"), ["good"])[0]
    entry = runner.run_one(good, "full")
    assert entry["status"] == "ok"
    assert entry["result"]["headline"] == {"sum": 30}
    assert entry["description"] == "Adds numbers."
    for fact in ("cores", "ram_gb", "python", "libraries", "date"):
        assert fact in entry["machine"]
    assert "polars" in entry["machine"]["libraries"]


def test_a_failing_benchmark_is_recorded_not_raised(bench_package: Path) -> None:
    found = {b.name: b for b in runner.discover(bench_package, "fakebench")}
    broken = runner.run_one(found["broken"], "small")
    assert broken["status"] == "failed"
    assert "ValueError: no data" in broken["error"]
    norun = runner.run_one(found["norun"], "small")
    assert norun["status"] == "failed" and "no run(scale)" in norun["error"]
    assert "failed" in runner.report(broken)


def test_save_keeps_one_entry_per_scale(bench_package: Path, tmp_path: Path) -> None:
    good = runner.select(runner.discover(bench_package, "fakebench"), ["good"])[0]
    results = tmp_path / "results"
    runner.save(runner.run_one(good, "small"), results)
    path = runner.save(runner.run_one(good, "full"), results)
    runner.save(runner.run_one(good, "small"), results)
    data = json.loads(path.read_text())
    assert path.name == "good.json"
    assert set(data["scales"]) == {"small", "full"}
    assert data["scales"]["full"]["result"]["headline"] == {"sum": 30}


def test_report_prints_headline_and_tables(bench_package: Path) -> None:
    good = runner.select(runner.discover(bench_package, "fakebench"), ["good"])[0]
    text = runner.report(runner.run_one(good, "small"))
    assert "sum  3" in text
    assert "scale" in text and "0.5" in text


def test_format_table_aligns_columns() -> None:
    text = runner.format_table([{"tool": "curate", "seconds": 1234.5}, {"tool": "polars", "rows": 10}])
    lines = text.splitlines()
    assert lines[0].split() == ["tool", "seconds", "rows"]
    assert "1,234" in lines[2] or "1,235" in lines[2]
    assert len({len(line) for line in lines}) == 1


def test_main_lists_and_fails_on_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main(["--list"]) == 0
    assert "metadata" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        runner.main(["--only", "no_such_benchmark", "--no-save"])


def test_measure_reports_the_child_not_the_parent() -> None:
    ballast = bytearray(400 * 2**20)  # a big parent must not inflate the child's peak
    ballast[::4096] = b"x" * len(ballast[::4096])
    small = measure([sys.executable, "-c", "pass"])
    big = measure([sys.executable, "-c", "x = bytearray(200 * 2**20); x[::4096] = b'y' * len(x[::4096])"])
    assert small.peak_rss_mb < 150
    assert 200 <= big.peak_rss_mb < 400
    assert big.cpu_seconds > 0 and big.seconds > 0
    del ballast


def test_measure_counts_the_cpu_of_orphaned_descendants() -> None:
    """A grandchild whose parent exits without waiting for it (as a multiprocessing forkserver's
    workers do) still counts: the launcher is its subreaper. The wall time is the command's."""
    orphan = ("import os, subprocess, sys\n"
              "if os.fork() == 0:\n"
              "    os.setsid()\n"
              "    import time\n"
              "    end = time.process_time() + 2.0\n"
              "    while time.process_time() < end: pass\n"
              "    os._exit(0)\n")
    measured = measure([sys.executable, "-c", orphan])
    assert measured.cpu_seconds >= 1.9
    assert measured.seconds < 1.5  # the command's start and exit: well under a second, even on a loaded machine


def test_measure_failures() -> None:
    with pytest.raises(CommandFailed, match="exited 3"):
        measure([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"])
    assert measure([sys.executable, "-c", "raise SystemExit(2)"], check=False).returncode == 2


def test_machine_facts_are_json() -> None:
    json.dumps(machine_facts())


def test_synthetic_table_is_deterministic_and_noisy(tmp_path: Path) -> None:
    first = synthetic.metadata_table(30_000, tmp_path / "a", seed=1)
    second = synthetic.metadata_table(30_000, tmp_path / "b", seed=1)
    a = pl.read_parquet(first / "*.parquet")
    assert a.equals(pl.read_parquet(second / "*.parquet"))
    assert a.columns == ["url", "alt_text"] and a.height == 30_000
    facts = synthetic.describe(first)
    assert 0.005 < facts["null_alt_text"] < 0.02
    assert 0.03 < facts["with_ampersand"] < 0.10
    assert 0.05 < facts["exact_duplicate_rows"] < 0.12
    assert synthetic.metadata_table(30_000, tmp_path / "a", seed=1) == first  # cached
