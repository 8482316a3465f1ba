"""The experiment curates through the engine (the path ``curate run`` takes), not curate.testing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[2]

BLOCK = textwrap.dedent("""
    # hypothesis as if not installed: the path finder does not see it (find_spec gives None, as
    # torch._dynamo probes it; import raises ModuleNotFoundError)
    import importlib.machinery, sys

    class _WithoutHypothesis(importlib.machinery.PathFinder):
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if name == "hypothesis" or name.startswith("hypothesis."):
                return None
            return importlib.machinery.PathFinder.find_spec(name, path, target)

    sys.meta_path[:] = [_WithoutHypothesis if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
""")

RUN = textwrap.dedent("""
    import sys
    from pathlib import Path
    import curate_train.cli, curate_train.clip, curate_train.evaluate, curate_train.evalsets, curate_train.seeds
    from curate_train.experiment import Variant, build_pool, mix

    work = Path(sys.argv[1])
    pool = build_pool(work / "world", {"n": 30, "seed": 0})
    table = mix(pool, Variant(name="half", strategy="replace_prob", options={"p": 0.5}), 0, work / "mix")
    assert table.height == pool.height, (table.height, pool.height)
    assert set(table["caption_source"]) <= {"original", "synthetic"}
    assert "hypothesis" not in sys.modules
    print("ok", table.height)
""")


def test_the_experiment_curates_without_hypothesis_importable(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO), str(REPO / "plugins")])}
    check = subprocess.run([sys.executable, "-c", "import hypothesis"], env=env, capture_output=True, text=True)
    assert check.returncode != 0 and "No module named 'hypothesis'" in check.stderr
    done = subprocess.run([sys.executable, "-c", RUN, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.startswith("ok")
    assert (tmp_path / "mix" / "run" / "manifest.json").is_file()  # a run directory, as curate run writes


def test_mixing_through_the_engine_matches_the_step_run_in_isolation(tmp_path):
    from curate_train.experiment import Variant, build_pool, mix

    from curate.testing.runner import run_step

    pool = build_pool(tmp_path / "world", {"n": 40, "seed": 1})
    pool = pool.with_columns(pl.Series("clip_score", [0.1] * pool.height),
                             pl.Series("clip_score_caption_realigned", [0.2 * (i % 2) for i in range(pool.height)]))
    for variant in (Variant(name="p", strategy="replace_prob", options={"p": 0.5}),
                    Variant(name="g", strategy="score_gated"), Variant(name="m", strategy="multi")):
        engine = mix(pool, variant, 3, tmp_path / variant.name)
        isolated = run_step("mix", pool, {"strategy": variant.strategy, "options": variant.options}, seed=3).kept
        assert engine.equals(isolated), variant.name


@pytest.mark.slow
def test_curate_experiment_run_works_without_hypothesis_importable(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO), str(REPO / "plugins")])}
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: tiny\nworld: {n: 60, seed: 0}\nepochs: 1\nbatch_size: 16\nwarmup: 1\n"
                    "variants:\n  - {name: alt_text, strategy: replace_prob, options: {p: 0.0}}\n"
                    "  - {name: half, strategy: replace_prob, options: {p: 0.5}}\n")
    done = subprocess.run([sys.executable, "-m", "curate.cli", "experiment", "run", str(spec), "--run-dir",
                           str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "experiment" / "results.json").read_text())
    assert [r["variant"] for r in results["results"]] == ["alt_text", "half"]
    assert all(0 <= r["accuracy"] <= 100 for r in results["results"])
