from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from curate.sink import SinkContext
from curate.step import TableInput
from tests.export.conftest import make_store

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_plugins_imports_no_torch():
    code = ("import sys, curate_mix.step, curate_export.sinks, curate_train.cli, curate_train.experiment, "
            "curate_train.spec_experiment, curate_train.patch, curate_train.gaps; "
            "heavy = [m for m in ('torch', 'open_clip', 'open_clip_train', 'diffusers', 'datasets') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["experiment_blend", "experiment_blend_captioner", "experiment_blend_world"])
def test_the_experiment_spec_loads(name):
    from curate_train.experiment import load

    spec = load(REPO / "specs" / f"{name}.yaml")
    names = [v.name for v in spec.variants]
    assert names[0] == spec.scorer == "alt_text"
    assert {"realigned", "replace_0.15", "replace_0.5", "score_gated", "multi"} <= set(names)


@pytest.mark.parametrize("line, expected", [
    ("name: /home/me", "name: an experiment's name becomes its run folder"),
    ("epochs: 5000", "epochs: must be ≤ 1000, got 5000"),
    ("lr: .inf", "lr: Input should be a finite number"),
    # the world's keys are checked when the spec loads; where it goes is the experiment's to say
    ("world: {n: 40, out_dir: /tmp/elsewhere}", "world: out_dir is the experiment's to set"),
    ("world: {n: 40, overwrite: true}", "world: overwrite is the experiment's to set"),
    ("world: {n: 40, colour: 3}", r"world: not a world's parameters \(colour: Extra inputs are not permitted\)"),
    ("world: {n: 0}", r"world: not a world's parameters \(n: Input should be greater than or equal to 1\)"),
])
def test_the_blend_experiment_refuses_a_name_or_budget_beyond_its_bounds(tmp_path, line, expected):
    from curate_train.experiment import load

    from curate.errors import SpecError

    path = tmp_path / "blend.yaml"
    path.write_text(f"{line}\nvariants: [{{name: alt_text, strategy: original}}]\n")
    with pytest.raises(SpecError, match=expected):
        load(path)


def test_the_blend_experiment_refuses_a_model_whose_tokenizer_would_run_code_before_any_work(tmp_path):
    from curate_train.experiment import load

    from curate.errors import SpecError
    from tests.clip.test_model_files import malicious_folder

    folder = malicious_folder(tmp_path / "evil", None, tmp_path / "ran")
    path = tmp_path / "blend.yaml"
    path.write_text(f"name: b\nmodel: 'local-dir:{folder}'\nvariants: [{{name: alt_text, strategy: original}}]\n")
    with pytest.raises(SpecError, match=r"blend.yaml:2: model: .*trust_remote_code"):
        load(path)
    assert not (tmp_path / "ran").exists()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # open_clip_train and webdataset warn about CPU runs and leaked handles
def test_open_clip_train_trains_on_the_webdataset_export_and_eval_reads_the_world(tmp_path):
    from curate_export.sinks import WebDatasetSink
    from curate_train.clip import train_clip
    from curate_train.evaluate import eval_zeroshot
    from curate_world.generate import generate_world

    table = make_store(tmp_path / "store", 32)
    source = tmp_path / "input.parquet"
    table.write_parquet(source)
    ctx = SinkContext(run_dir=tmp_path, spec_dir=tmp_path, seed=0, label="export", path="shards")
    sink = WebDatasetSink(WebDatasetSink.Params(store_dir=str(tmp_path / "store"), samples_per_shard=16), ctx)
    sink.write(TableInput([source], dict(table.schema)))
    checkpoint = train_clip(tmp_path / "shards", tmp_path / "logs", name="tiny", epochs=1, batch_size=8, warmup=1)
    assert checkpoint.is_file()
    world = tmp_path / "world"
    generate_world(world, n=60, seed=0, fault_rate=0.0)
    metrics = eval_zeroshot(checkpoint, world)
    assert 0 <= metrics["acc_shape"] <= 1 and 0 <= metrics["acc_color"] <= 1 and 0 <= metrics["i2t_r1"] <= 1
    assert metrics["n_eval"] == 50


@pytest.mark.filterwarnings("ignore")  # open_clip_train and webdataset warn about CPU runs and leaked handles
def test_one_seed_trains_one_model(tmp_path):
    """webdataset's sample shuffle is seeded from the clock and the pid: two `curate train clip --seed 0`
    gave two models (a test's tiny model scored 0.5 once, 1.0 otherwise). The seed now fixes the order."""
    import torch
    from curate_export.sinks import WebDatasetSink
    from curate_train.clip import train_clip

    table = make_store(tmp_path / "store", 32)
    table.write_parquet(tmp_path / "input.parquet")
    ctx = SinkContext(run_dir=tmp_path, spec_dir=tmp_path, seed=0, label="export", path="shards")
    WebDatasetSink(WebDatasetSink.Params(store_dir=str(tmp_path / "store"), samples_per_shard=16), ctx) \
        .write(TableInput([tmp_path / "input.parquet"], dict(table.schema)))
    weights = []
    for run in ("first", "second"):
        checkpoint = train_clip(tmp_path / "shards", tmp_path / "logs", name=run, epochs=1, batch_size=8, warmup=1)
        weights.append(torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_the_color_oracle_finds_the_prompted_color():
    from curate_train.diffusion import color_share
    from curate_world.vocab import COLORS
    from PIL import Image

    image = Image.new("RGB", (10, 10), COLORS["red"])
    image.paste(Image.new("RGB", (10, 5), COLORS["blue"]), (0, 0))
    assert color_share(image, "red") == 0.5 and color_share(image, "blue") == 0.5
    assert color_share(image, "green") == 0.0


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_train_diffusion_runs_on_an_imagefolder_export(tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from curate_export.sinks import ImageFolderSink, WebDatasetSink
    from curate_train.clip import train_clip
    from curate_train.diffusion import train_diffusion

    table = make_store(tmp_path / "store", 16)
    source = tmp_path / "input.parquet"
    table.write_parquet(source)
    for sink_cls, path in ((WebDatasetSink, "shards"), (ImageFolderSink, "folder")):
        ctx = SinkContext(run_dir=tmp_path, spec_dir=tmp_path, seed=0, label=path, path=path)
        sink_cls(sink_cls.Params(store_dir=str(tmp_path / "store")), ctx).write(TableInput([source], dict(table.schema)))
    checkpoint = train_clip(tmp_path / "shards", tmp_path / "logs", name="tiny", epochs=1, batch_size=8, warmup=1)
    result = train_diffusion(tmp_path / "folder", checkpoint, tmp_path / "diffusion", steps=3, batch_size=4,
                             sample_steps=2)
    assert result["colors"] == 10 and 0 <= result["color_hits"] <= 10
    assert (tmp_path / "diffusion" / "sample_red.png").is_file()


@pytest.mark.slow
def test_the_experiment_pool_can_take_its_synthetic_captions_from_the_shipped_captioner(tmp_path):
    from curate_train.experiment import build_pool, load, realign_pool

    spec = load(REPO / "specs" / "experiment_blend_captioner.yaml")
    assert spec.synthetic == "captioner"
    pool = build_pool(tmp_path / "world", {"n": 30, "seed": 3})
    realigned = realign_pool(pool, spec.captioner_model, seed=0, workdir=tmp_path / "realign")
    assert realigned.columns == pool.columns
    assert realigned["uid"].to_list() == pool["uid"].to_list()
    assert realigned["caption_realigned"].null_count() == 0
    # the captioner's own text, not the annotator's: the realign step ran and signed every row
    # (the shipped captioner now writes the annotator's exact caption for most rows of a small world)
    from curate_world.api import step_table

    written, _ = step_table(tmp_path / "realign" / "run", "realign", ["caption_model", "caption_realigned"])
    assert written["caption_model"].str.starts_with("world-captioner@").all()
    assert sorted(written["caption_realigned"].to_list()) == sorted(realigned["caption_realigned"].to_list())
    assert all(c.endswith("background.") for c in realigned["caption_realigned"])


def test_the_held_out_blend_spec_loads_and_its_world_is_held_out():
    from curate_train.experiment import load

    spec = load(REPO / "specs" / "experiment_blend_heldout.yaml")
    assert [v.name for v in spec.variants] == ["alt_text", "realigned", "replace_0.5", "multi"]
    assert spec.world["scenes"] == "heldout" and spec.synthetic == "captioner" and len(spec.seeds) == 5


def test_open_clip_trains_logging_is_undone_after_each_run(tmp_path):
    # open_clip_train's setup_logging adds root handlers and never removes them: without this, a
    # second training in one process wrote into the first run's out.log and to a closed stream.
    import logging

    from curate_train.clip import own_logging
    from open_clip_train.logger import setup_logging

    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    dynamo_level = logging.getLogger("torch._dynamo").level
    for run in ("first", "second"):
        with own_logging():
            setup_logging(str(tmp_path / f"{run}.log"), logging.INFO)
            logging.getLogger("curate.test").info("line of %s", run)
        assert root.handlers == before and root.level == level
        # every logger's level too: INFO on torch's dynamo loggers printed its metrics at exit
        assert logging.getLogger("torch._dynamo").level == dynamo_level
    assert "line of second" not in (tmp_path / "first.log").read_text()
    assert "line of first" in (tmp_path / "first.log").read_text()


def test_a_model_whose_weights_are_loaded_next_is_built_without_the_random_init_warning(caplog):
    import logging

    from curate_train.clip import no_random_init_warning

    with caplog.at_level(logging.WARNING), no_random_init_warning():
        logging.warning("No pretrained weights loaded for model 'curate-train-tiny'. Model initialized randomly.")
        logging.warning("a warning of its own")
    assert [r.getMessage() for r in caplog.records] == ["a warning of its own"]
