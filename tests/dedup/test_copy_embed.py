"""copy_embed: copy-detection descriptors (the shipped world-copy, or a TorchScript model such as
SSCD), and dedup_semantic / decontaminate on them against a generated world's ground truth."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest

pytest.importorskip("torch")
pytest.importorskip("faiss")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from curate.errors import SpecError  # noqa: E402
from curate.testing import run_spec, run_step  # noqa: E402
from curate.testing.runner import read_step_output  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from curate_world.generate import generate_world

    return generate_world(tmp_path_factory.mktemp("copy") / "w", n=300, seed=11, eval_n=20, fault_rate=0.0).dir


def image_table(world_dir: Path, limit: int | None = None) -> pl.DataFrame:
    table = pl.read_parquet(world_dir / "world.parquet")
    table = table.head(limit) if limit else table
    key = pl.col("world_id").cast(pl.Utf8).str.zfill(6)
    return table.select(
        key.alias("uid"), pl.concat_str(pl.lit("http://127.0.0.1/"), key).alias("url"), "alt_text", pl.col("dup_group").alias("gt_dup_group"),
        pl.col("description").alias("gt_description"),
        pl.struct(pl.lit(str(world_dir / "images")).alias("shard"), key.alias("key")).alias("image"))


def stored(artifacts_parent: Path, name: str = "copy") -> tuple[list[str], np.ndarray]:
    from curate.embeddings import EmbeddingStore

    uids, vectors = EmbeddingStore.of_step(artifacts_parent, name).load_all()
    return [str(u) for u in uids], vectors


def run_copy_embed(dedup_pm, table, params=None, shard_size=1000, workdir=None):
    """Run copy_embed through the engine's step runner, keeping its store (the runner's own
    temporary directory is removed)."""
    spec = {"name": "t", "source": {"format": "parquet", "path": "data.parquet"},
            "steps": [{"step": "copy_embed", "params": params or {}}], "run": {"report": False,
                                                                            "shard_size": shard_size}}
    manifest = run_spec(spec, workdir, tables={"data.parquet": table}, pm=dedup_pm)
    return manifest, Path(manifest["steps"][-1]["path"])


@pytest.mark.parametrize("model, says", [
    ("sscd_disc_mixup", "offline"),
    ("https://dl.fbaipublicfiles.com/sscd-copy-detection/sscd_disc_mixup.torchscript.pt", "offline"),
    ("/nonexistent/sscd.torchscript.pt", "does not exist"),
])
def test_a_model_that_is_not_here_fails_at_plan_time_saying_how_to_fix_it(dedup_pm, world, model, says):
    with pytest.raises(SpecError) as error:
        run_step("copy_embed", image_table(world, 4), {"model": model}, pm=dedup_pm)
    assert says in str(error.value)
    if says == "offline":
        assert "sscd-copy-detection" in str(error.value) and "world-copy" in str(error.value)


def test_a_file_that_is_not_a_model_is_a_clear_error(dedup_pm, world, tmp_path):
    path = tmp_path / "broken.torchscript.pt"
    path.write_bytes(b"not a model")
    with pytest.raises(SpecError, match="not a TorchScript archive"):
        run_step("copy_embed", image_table(world, 4), {"model": str(path)}, pm=dedup_pm)


def test_a_state_dict_given_as_torchscript_is_refused_at_plan_time(dedup_pm, world, tmp_path):
    import torch

    torch.save({"w": torch.zeros(2)}, str(tmp_path / "weights.pt"))
    with pytest.raises(SpecError, match="looks like a torch.save pickle"):
        run_step("copy_embed", image_table(world, 4), {"model": str(tmp_path / "weights.pt")}, pm=dedup_pm)


class _WritesMarker:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _exported(path: Path) -> Path:
    import torch

    module = torch.nn.Linear(4, 2)
    torch.export.save(torch.export.export(module, (torch.zeros(1, 4),)), str(path))
    return path


def _rewrite(source: Path, target: Path, change) -> Path:
    import zipfile

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, change(info.filename, old.read(info.filename)))
    return target


def test_a_broken_pt2_is_refused_at_plan_time(dedup_pm, world, tmp_path, capfd):
    (tmp_path / "garbage.pt2").write_bytes(b"garbage" * 10)
    with pytest.raises(SpecError, match="garbage.pt2 is not a torch.export program: not a zip archive"):
        run_step("copy_embed", image_table(world, 4), {"model": str(tmp_path / "garbage.pt2")}, pm=dedup_pm)
    import torch

    torch.save({"w": torch.zeros(2)}, str(tmp_path / "state.pt2"))
    with pytest.raises(SpecError, match="state.pt2 is not a torch.export program of the current format"):
        run_step("copy_embed", image_table(world, 4), {"model": str(tmp_path / "state.pt2")}, pm=dedup_pm)
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("planted", ["sample inputs", "pickled weight"])
def test_a_pt2_that_would_unpickle_is_refused_without_running_it(dedup_pm, world, tmp_path, planted):
    """torch.export.load unpickles (weights_only=False) weights marked use_pickle, and retries
    sample inputs that a safe load refuses without weights_only: either could run code."""
    import json

    import torch

    marker = tmp_path / "pwned"
    payload = io.BytesIO()
    torch.save(_WritesMarker(marker), payload)

    def change(name: str, data: bytes) -> bytes:
        if planted == "sample inputs" and "/data/sample_inputs/" in name:
            return payload.getvalue()
        if planted == "pickled weight" and name.endswith("data/weights/model_weights_config.json"):
            config = json.loads(data)
            config["config"]["weight"]["use_pickle"] = True
            return json.dumps(config).encode()
        if planted == "pickled weight" and name.endswith("data/weights/weight_0"):
            return payload.getvalue()
        return data

    path = _rewrite(_exported(tmp_path / "ok.pt2"), tmp_path / "planted.pt2", change)
    with pytest.raises(SpecError, match="planted.pt2 is refused"):
        run_step("copy_embed", image_table(world, 4), {"model": str(path)}, pm=dedup_pm)
    from curate_dedup.copydetect import loader

    with pytest.raises(loader.CopyModelError):
        loader.load(str(path))
    assert not marker.exists()
    assert loader.check(str(tmp_path / "ok.pt2")) == []


def test_cli_refuses_a_broken_pt2_with_exit_2(world, tmp_path, curate_cli):
    from tests.conftest import REPO

    image_table(world, 4).write_parquet(tmp_path / "rows.parquet")
    (tmp_path / "bad.pt2").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "spec.yaml").write_text(
        "name: t\nsource: {format: parquet, path: rows.parquet}\n"
        f"steps:\n  - step: copy_embed\n    params: {{model: '{tmp_path / 'bad.pt2'}'}}\n")
    result = curate_cli("validate", str(tmp_path / "spec.yaml"), cwd=tmp_path, pythonpath=[REPO, REPO / "plugins"])
    assert result.code == 2, result
    assert "bad.pt2 is not a torch.export program" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_an_input_size_the_world_model_cannot_take_fails_at_plan_time(dedup_pm, world):
    with pytest.raises(SpecError, match="takes 64 px images"):
        run_step("copy_embed", image_table(world, 4), {"image_size": 128}, pm=dedup_pm)


def test_a_directory_without_weights_is_refused(dedup_pm, world, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SpecError, match="model.safetensors"):
        run_step("copy_embed", image_table(world, 4), {"model": str(tmp_path)}, pm=dedup_pm)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(has_image=st.lists(st.booleans(), min_size=1, max_size=24), shard_size=st.integers(1, 10),
       batch_size=st.integers(1, 16))
def test_the_table_passes_through_and_every_image_gets_one_unit_descriptor(
        dedup_pm, world, tmp_path_factory, has_image, shard_size, batch_size):
    table = image_table(world, len(has_image)).with_columns(
        pl.when(pl.Series(has_image)).then(pl.col("image")).alias("image"))
    workdir = tmp_path_factory.mktemp("prop")
    manifest, step_dir = run_copy_embed(dedup_pm, table, {"batch_size": batch_size}, shard_size, workdir)
    out = read_step_output(manifest, "copy_embed")
    assert out.equals(table)
    uids, vectors = stored(step_dir)
    assert sorted(uids) == sorted(table.filter(pl.Series(has_image))["uid"].to_list())
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=2e-3)
    # The same image gets the same descriptor whatever the sharding and batching.
    reference = reference_vectors(dedup_pm, world, tmp_path_factory)
    for uid, vector in zip(uids, vectors):
        assert np.allclose(vector, reference[uid], atol=2e-3)


_reference: dict[str, np.ndarray] = {}


def reference_vectors(dedup_pm, world, tmp_path_factory) -> dict[str, np.ndarray]:
    if not _reference:
        _, step_dir = run_copy_embed(dedup_pm, image_table(world, 24), {}, 1000, tmp_path_factory.mktemp("ref"))
        _reference.update(zip(*stored(step_dir)))
    return _reference


@pytest.mark.parametrize("form", ["torchscript.pt", "pt2"])
def test_a_torchscript_or_exported_model_gives_the_same_descriptors_as_its_directory(
        dedup_pm, world, tmp_path, form):
    """SSCD ships TorchScript files (torch.export's .pt2 is their successor); the world model
    saved as one must embed identically."""
    import warnings

    import torch
    from curate_dedup.copydetect import loader

    shipped = loader.load(loader.WORLD_COPY)
    example = torch.zeros(2, 3, shipped.image_size, shipped.image_size)
    path = tmp_path / f"world-copy.{form}"
    if form == "pt2":
        batch = torch.export.Dim("batch", min=1, max=65536)
        torch.export.save(torch.export.export(shipped.module, (example,), dynamic_shapes=({0: batch},)), str(path))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated, and still SSCD's format
            torch.jit.trace(shipped.module, example).save(str(path))
    table = image_table(world, 12)
    _, as_directory = run_copy_embed(dedup_pm, table, {}, workdir=tmp_path / "a")
    params = {"model": str(path), "image_size": shipped.image_size, "mean": list(shipped.mean), "std": list(shipped.std)}
    _, as_torchscript = run_copy_embed(dedup_pm, table, params, workdir=tmp_path / "b")
    (uids_a, a), (uids_b, b) = stored(as_directory), stored(as_torchscript)
    assert uids_a == uids_b and np.allclose(a, b, atol=2e-3)


def planted_scores(frame: pl.DataFrame, groups: np.ndarray) -> dict[str, float]:
    from curate_dedup.worldeval import pair_counts, scores, truth_labels

    return scores(pair_counts(groups, truth_labels(frame)["content"]))


@pytest.mark.slow
def test_dedup_on_copy_descriptors_finds_the_worlds_planted_duplicates(dedup_pm, world, tmp_path):
    table = image_table(world)
    spec = {"name": "d", "source": {"format": "parquet", "path": "data.parquet"},
            "steps": [{"step": "copy_embed"}, {"step": "dedup_semantic", "params": {"embedding": "copy"}}],
            "run": {"report": False}}
    manifest = run_spec(spec, tmp_path, tables={"data.parquet": table}, pm=dedup_pm)
    record = manifest["steps"][-1]
    assert record["summary"]["embeddings_from"] == "copy_embed"
    assert record["summary"]["model"].startswith("curate-copy-cnn@")
    step_dir = Path(record["path"])
    kept = pl.concat([pl.read_parquet(p) for p in sorted(step_dir.glob("data/*.parquet"))])
    dropped = pl.concat([pl.read_parquet(p) for p in sorted(step_dir.glob("dropped/*.parquet"))])
    verdict = pl.concat([kept.select("uid", "dup_group"), dropped.select("uid", "dup_group")])
    joined = table.join(verdict, on="uid").sort("uid")
    group = joined["dup_group"].to_numpy(allow_copy=True).astype(float)
    labels = np.where(np.isnan(group), -1 - np.arange(len(group)), np.nan_to_num(group)).astype(np.int64)
    result = planted_scores(joined, labels)
    assert result["precision"] >= 0.9 and result["recall"] >= 0.9, result
    # Every dropped row names the row that stayed, and that row was kept.
    assert set(dropped["_duplicate_of"]) <= set(kept["uid"])


@pytest.mark.slow
def test_decontamination_on_copy_descriptors_drops_only_the_leaked_eval_images(dedup_pm, world, tmp_path):
    from PIL import Image

    shard = tmp_path / "leaks"
    shard.mkdir()
    evals = pl.read_parquet(world / "eval.parquet")
    rows = []
    for eval_id, path in zip(evals["eval_id"][:5], evals["image_path"][:5]):
        key = f"leak{eval_id}"
        image = Image.open(world / path).convert("RGB")
        image = image.resize((80, 80), Image.Resampling.BILINEAR)  # re-uploaded bigger, recompressed
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=70)
        (shard / f"{key}.jpg").write_bytes(buffer.getvalue())
        rows.append({"uid": key, "url": f"http://127.0.0.1/{key}", "alt_text": "a picture", "leak": str(eval_id),
                     "image": {"shard": str(shard), "key": key}})
    table = pl.concat([image_table(world).select("uid", "url", "alt_text", "image").with_columns(
        pl.lit(None, pl.Utf8).alias("leak")).select("uid", "url", "alt_text", "leak", "image"),
        pl.DataFrame(rows).select("uid", "url", "alt_text", "leak", "image")], how="vertical_relaxed")
    spec = {"name": "c", "source": {"format": "parquet", "path": "data.parquet"},
            "steps": [{"step": "copy_embed"},
                      {"step": "decontaminate", "params": {"eval": str(world / "eval.parquet"), "embedding": "copy",
                                                           "eps": 0.06}}],
            "run": {"report": False}}
    manifest = run_spec(spec, tmp_path, tables={"data.parquet": table}, pm=dedup_pm)
    record = manifest["steps"][-1]
    assert record["dropped"] == {f"decontaminate: eval {i}": 1 for i in evals["eval_id"][:5]}
    kept = read_step_output(manifest, "decontaminate")
    assert kept["leak"].null_count() == kept.height == 300


def test_dedup_on_copy_descriptors_without_copy_embed_says_which_step_to_add(dedup_pm, world, tmp_path):
    from curate.errors import CurateError

    spec = {"name": "n", "source": {"format": "parquet", "path": "data.parquet"},
            "steps": [{"step": "dedup_semantic", "params": {"embedding": "copy"}}], "run": {"report": False}}
    with pytest.raises(CurateError) as error:
        run_spec(spec, tmp_path, tables={"data.parquet": image_table(world, 6)}, pm=dedup_pm)
    assert "'copy' embeddings" in str(error.value) and "copy_embed" in str(error.value)


@pytest.mark.parametrize("suffix", [".pt", ".pt2"])
def test_an_untrusted_spec_may_not_name_a_copy_model_that_is_a_program(dedup_pm, world, tmp_path, monkeypatch,
                                                                        suffix):
    """A TorchScript forward ran its own code: aten::from_file put /etc/passwd in the descriptors
    (security probe). An untrusted spec names a model directory (safetensors) or world-copy."""
    from curate_dedup.copydetect import loader

    model = tmp_path / f"model{suffix}"
    model.write_bytes(b"anything: it is refused by its kind, before it is opened")
    monkeypatch.chdir(tmp_path)
    assert "loading it runs the code it holds" in " ".join(loader.check(str(model), untrusted=True))
    assert "loading it runs" not in " ".join(loader.check(str(model), untrusted=False))


def test_a_pt2_member_that_unpacks_past_the_bound_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """A 3 MB .pt2 held a sample input deflating to 3 GB, read whole at `curate validate`."""
    import zipfile

    from curate_dedup.copydetect import archives

    monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 1 << 20)
    path = tmp_path / "bomb.pt2"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("m/archive_format", "pt2")
        archive.writestr("m/models/model.json", "{}")
        archive.writestr("m/data/sample_inputs/model.pt", b"\0" * (4 << 20))
    assert path.stat().st_size < 100_000
    problems = archives.export_problems(path)
    assert len(problems) == 1 and "unpacks to 4,194,304 bytes, more than the 1,048,576" in problems[0]
