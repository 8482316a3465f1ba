"""The captioner closed-loop experiment (specs/experiment_captioner_loop.yaml) validates on the pool
and eval tables its script makes from a world, and its pool's image refs read back the world's images."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.captioner_loop_data import make
from tests.train.test_evalsets import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from curate_world.generate import generate_world

    out = tmp_path_factory.mktemp("loop") / "world"
    generate_world(out, n=40, seed=11, fault_rate=0.0, realign_fraction=1.0, web_style_rate=0.5)
    return out


@settings(max_examples=5, deadline=None)
@given(rows=st.one_of(st.none(), st.integers(1, 60)))
def test_pool_is_the_train_split_and_its_refs_read_the_world_images(world: Path, rows: int | None, tmp_path_factory) -> None:
    from curate.images import read_image_bytes

    out = tmp_path_factory.mktemp("data")
    facts = make(world, out, rows)
    train = pl.read_parquet(world / "world.parquet").filter(pl.col("split") == "train").sort("world_id")
    expected = train.height if rows is None else min(rows, train.height)
    pool = pl.read_parquet(out / "pool.parquet")
    assert facts["pool_rows"] == pool.height == expected
    assert pool["world_id"].to_list() == train["world_id"].to_list()[:expected]
    for ref, path in zip(pool["image"].to_list(), train["image_path"].to_list(), strict=False):
        assert read_image_bytes(ref) == (world / path).read_bytes()
    evaluation = pl.read_parquet(world / "eval.parquet")
    for name in ("shape", "color", "text"):
        table = pl.read_parquet(out / f"eval_{name}.parquet")
        assert table.height == evaluation.height and all(Path(p).is_file() for p in table["path"])


def test_the_loop_experiment_validates(world: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    make(world, tmp_path / "runs" / "captioner-loop-data")
    (tmp_path / "specs").mkdir()
    shutil.copy(REPO / "specs" / "experiment_captioner_loop.yaml", tmp_path / "specs")
    shipped = REPO / "plugins" / "curate_captioner" / "world_model"
    for name in ("dpo", "sft_cfg"):  # stand-ins for the tuned captioners
        shutil.copytree(shipped, tmp_path / "runs" / "captioner-loop" / name)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(["experiment", "validate", tmp_path / "specs" / "experiment_captioner_loop.yaml"], capsys)
    assert code == 0, err
    for variant in ("sft", "dpo", "guided"):
        assert f"ok {variant}: source → realign" in out
