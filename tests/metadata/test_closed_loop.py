"""The metadata-balancing closed loop's inputs (benchmarks/metadata_world.py) and its experiment spec:
the pools are long-tailed, the eval is uniform, and specs/experiment_metadata_balance.yaml
validates on them (every variant planned, the eval groups checked against the eval tables)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import REPO
from tests.train.test_evalsets import cli


ENTRIES = ["circle", "square", "triangle", "star", "hexagon", "cross", "diamond", "heart", "red", "orange", "yellow",
           "green", "blue", "purple", "pink", "brown", "black", "white"]


def script():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import metadata_world
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return metadata_world


def test_the_loop_spec_validates_on_the_long_tailed_pools_its_script_makes(tmp_path, capsys, monkeypatch):
    make_eval, make_pool = script().make_eval, script().make_pool
    data = tmp_path / "runs" / "metadata-world"
    data.mkdir(parents=True)
    (data / "entries.txt").write_text("\n".join(["circle", "square", "triangle", "star", "hexagon", "cross", "diamond",
                                                  "heart", "red", "orange", "yellow", "green", "blue", "purple",
                                                  "pink", "brown", "black", "white"]) + "\n")
    counts = {seed: make_pool(data, seed, n=300, skew=2.0, entity_rate=0.0) for seed in (1, 2)}
    make_eval(data, seed=1000, n=200, entity_rate=0.0)
    for seed, seen in counts.items():
        assert seen["circle"] > 3 * seen["heart"] and seen["red"] > 3 * seen["brown"]  # the skew's long tail
        pool = pl.read_parquet(data / f"pool-{seed}.parquet")
        assert pool.columns == ["uid", "url", "alt_text", "image", "noise_type"] and pool["uid"].n_unique() == len(pool)
    shapes = pl.read_parquet(data / "eval-shapes.parquet")
    assert len(shapes) == 200 and shapes["label"].n_unique() == 8  # uniform: the tail is there to be tested
    assert all((data / p).is_file() for p in shapes["path"])
    (tmp_path / "specs").mkdir()
    for name in ("experiment_metadata_balance.yaml", "metadata_world_pool.yaml"):
        shutil.copy(REPO / "specs" / name, tmp_path / "specs" / name)
    monkeypatch.chdir(tmp_path)  # step paths (the entry list) are relative to the working directory
    code, out, err = cli(["experiment", "validate", "specs/experiment_metadata_balance.yaml"], capsys)
    assert code == 0, err
    assert "ok balanced: source → match → metadata_balance" in out
    assert "ok unbalanced: source → match → sample" in out
    assert out.index("ok balanced") < out.index("ok unbalanced")  # {rows:balanced} is known first
    assert not (tmp_path / "runs" / "metadata-loop").exists()
    json.dumps(counts)  # what counts.json holds is plain JSON


def test_the_averaged_design_trains_each_heldout_world_under_its_run_seeds(tmp_path, capsys, monkeypatch):
    """specs/experiment_metadata_balance_inits.yaml: world w's pool under run seeds 10w+i, pools from the
    training partition of the scene space, the eval world from the held-out one."""
    world = script()
    data = tmp_path / "runs" / "metadata-world-heldout"
    data.mkdir(parents=True)
    (data / "entries.txt").write_text("\n".join(ENTRIES) + "\n")
    assert world.run_seeds(11, 4) == [110, 111, 112, 113] and world.run_seeds(11, 1) == [11]
    world.make_pool(data, 11, n=300, skew=2.0, entity_rate=0.0, scenes="train", inits=2)
    world.make_eval(data, seed=1000, n=100, entity_rate=0.0, scenes="heldout")
    pools = [pl.read_parquet(data / f"pool-{s}.parquet") for s in (11, 110, 111)]
    assert pools[0].equals(pools[1]) and pools[0].equals(pools[2])  # one world, three names
    scenes = {name: json.loads((data / name / "world.json").read_text())["params"]["scenes"] for name in ("world-11", "eval")}
    assert scenes == {"world-11": "train", "eval": "heldout"}  # no eval scene can be in a pool
    (tmp_path / "specs").mkdir()
    shutil.copy(REPO / "specs" / "experiment_metadata_balance_inits.yaml", tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(["experiment", "validate", "specs/experiment_metadata_balance_inits.yaml"], capsys)
    assert code == 0, err
    assert "ok unbalanced: source → match → sample" in out


def test_the_summary_averages_a_worlds_runs_and_pairs_over_worlds(tmp_path, monkeypatch):
    world = script()
    monkeypatch.setattr(world, "pool_facts", lambda folder: {"tail_share_shapes": 10.0, "tail_share_colors": 20.0})
    tail = {110: (30, 10), 111: (20, 20), 120: (40, 20), 121: (30, 30)}  # run seed: colour tail (balanced, unbalanced)
    for seed, pair in tail.items():
        for variant, value in zip(("balanced", "unbalanced"), pair):
            folder = tmp_path / ("a" if seed < 120 else "b") / f"seed-{seed}" / variant
            folder.mkdir(parents=True)
            result = {"rows": 100} | {f"{s}.acc1{p}": 0.0 for s in ("shapes", "colors") for p in ("", "_head")}
            (folder / "result.json").write_text(json.dumps(result | {"shapes.acc1_tail": 0.0, "colors.acc1_tail": value}))
    summary = world.summarize([tmp_path / "a", tmp_path / "b"], per_world=True)
    assert summary["worlds"] == [11, 12] and summary["inits"] == 2
    assert summary["variants"]["balanced"]["colors_tail"]["by_world"] == [25.0, 35.0]
    assert summary["gaps"]["colors_tail"]["by_seed"] == [10.0, 10.0]  # world means paired: 25-15, 35-25
    assert summary["gaps_by_run"]["colors_tail"] == {11: [20.0, 0.0], 12: [20.0, 0.0]}
    assert summary["init_sd"]["colors_tail"] == round(200 ** 0.5, 2)  # sd of (20, 0) in each world
    with pytest.raises(SystemExit, match="unequal numbers"):
        world.summarize([tmp_path / "a", tmp_path / "b"], per_world=True, only={110, 111, 120})
