"""Against a generated world, with real CLIP embeddings (clip_score): slow, and skipped without
torch/open_clip. Where the shipped world CLIP's weights are missing, a randomly initialised
world-clip-tiny stands in: its embeddings mean nothing, but they are the same function on both
sides, which is what decontamination's plumbing needs (exact copies match exactly)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("open_clip")
pytest.importorskip("curate_clip")
pytest.importorskip("faiss")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from curate_world.generate import generate_world

    return generate_world(tmp_path_factory.mktemp("worlds") / "w", n=80, seed=3, eval_n=20).dir


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    import open_clip
    import torch
    from curate_clip.models import WORLD_MODEL, register_configs
    from safetensors.torch import save_file

    register_configs()
    torch.manual_seed(0)
    model = open_clip.create_model(WORLD_MODEL)
    path = tmp_path_factory.mktemp("clip") / "random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


def test_eval_images_leaked_into_training_are_dropped_naming_the_eval_item(
        dedup_pm, workdir, world, random_checkpoint):
    import curate_clip
    from PIL import Image

    from curate.testing import run_spec
    from curate.testing.runner import read_step_output

    dedup_pm.register(curate_clip, name="clip", distribution="curate", version=curate_clip.__version__)
    shard = workdir / "images"
    shard.mkdir()
    rows = []
    for world_id in range(30):
        key = f"w{world_id}"
        shutil.copy(world / "images" / f"{world_id:06d}.jpg", shard / f"{key}.jpg")
        rows.append({"uid": key, "url": f"http://x/{key}", "alt_text": "a picture", "leak": None})
    evals = pl.read_parquet(world / "eval.parquet")
    for eval_id, path in zip(evals["eval_id"][:4], evals["image_path"][:4]):
        key = f"leak{eval_id}"
        image = Image.open(world / path).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, "PNG")  # lossless: the same pixels under another encoding
        (shard / f"{key}.png").write_bytes(buffer.getvalue())
        rows.append({"uid": key, "url": f"http://x/{key}", "alt_text": "a picture", "leak": str(eval_id)})
    table = pl.DataFrame(rows).with_columns(
        pl.struct(pl.lit(str(shard)).alias("shard"), pl.col("uid").alias("key")).alias("image"))
    spec = {
        "name": "leaks",
        "source": {"format": "parquet", "path": "data.parquet", "columns": {"uid": "uid"}},
        "steps": [
            {"step": "clip_score", "params": {"checkpoint": random_checkpoint, "batch_size": 16}},
            # Random weights map different images close together; only exact copies are sure.
            {"step": "decontaminate", "params": {"eval": str(world / "eval.parquet"), "eps": 1e-4,
                                                 "clip_checkpoint": random_checkpoint}},
        ],
        "run": {"report": False},
    }
    manifest = run_spec(spec, workdir, tables={"data.parquet": table}, pm=dedup_pm)
    record = manifest["steps"][-1]
    assert record["summary"]["eval_items"] == 20 and record["summary"]["eval_kind"] == "parquet"
    assert record["dropped"] == {f"decontaminate: eval {i}": 1 for i in range(4)}
    kept = read_step_output(manifest, "decontaminate")
    assert kept["leak"].null_count() == kept.height == 30
    cached = Path(record["path"]) / "artifacts" / "embeddings" / "eval" / "meta.json"
    assert cached.exists()
