"""Eval sets as data (imagefolder / table, templates, retrieval), models by path (the local-dir:
folder `curate train clip` writes) and the `curate train clip|eval` options and errors."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import torch
from PIL import Image

from curate.errors import UsageError

RGB = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "magenta": (255, 0, 255)}


def solid(path: Path, color: str, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), RGB[color]).save(path)
    return path


class ColorModel:
    """A model whose embeddings the test controls: an image is its mean colour (RGB), a text is the
    unit vector of the first colour word in it. Every number below follows by hand."""

    WORDS = {"red": [1.0, 0, 0], "green": [0, 1.0, 0], "blue": [0, 0, 1.0]}

    @staticmethod
    def preprocess(image):
        return torch.tensor(image.getpixel((0, 0)), dtype=torch.float32) / 255

    @staticmethod
    def tokenizer(texts):
        return list(texts)

    def encode_image(self, images):
        return images

    def encode_text(self, texts):
        rows = []
        for text in texts:
            word = next((w for w in self.WORDS if w in text.split()), None)
            rows.append(self.WORDS[word] if word else [1.0, 1.0, 1.0])
        return torch.tensor(rows)


def evaluate(evalset):
    from curate_train.evalsets import evaluate_set

    model = ColorModel()
    return evaluate_set(model, model.preprocess, model.tokenizer, evalset)


def test_imagefolder_zero_shot_accuracy_matches_the_hand_count(tmp_path):
    from curate_train.evalsets import make_eval_set

    root = tmp_path / "folder"
    for i, (folder, color) in enumerate([("c0", "red"), ("c0", "red"), ("c0", "blue"), ("c1", "green"),
                                         ("c2", "blue")]):
        solid(root / folder / f"{i}.png", color)
    (root / "c1" / "notes.txt").write_text("not an image")
    evalset = make_eval_set({"format": "imagefolder", "path": str(root), "templates": ["a {} photo", "the {}"],
                             "classnames": {"c0": "red", "c1": "green", "c2": "blue"}}, "test")
    metrics = evaluate(evalset)
    # the blue image filed under c0 (red) is the one miss: 4 of 5
    assert metrics == {"n": 5, "acc1": 0.8, "classes": 3, "chance": 1 / 3}


def test_a_classnames_key_that_is_no_class_is_refused_with_the_closest_class(tmp_path):
    from curate_train.evalsets import make_eval_set

    solid(tmp_path / "dogs" / "a.png", "red")
    solid(tmp_path / "cats" / "a.png", "blue")
    evalset = make_eval_set({"format": "imagefolder", "path": str(tmp_path), "classnames": {"dgs": "dog"}}, "t")
    with pytest.raises(UsageError) as error:
        evaluate(evalset)
    assert "'dgs'" in str(error.value) and "did you mean 'dogs'" in str(error.value)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_retrieval_on_a_paired_table_matches_the_hand_count(tmp_path, suffix):
    from curate_train.evalsets import make_eval_set

    for color in ("red", "green", "blue", "magenta"):
        solid(tmp_path / "images" / f"{color}.png", color)
    table = pl.DataFrame({
        "path": ["images/red.png", "images/green.png", "images/blue.png", "images/magenta.png", "images/red.png"],
        "text": ["a red square", "a green square", "a blue square", "a red thing", "a green square"],
    })
    file = tmp_path / f"pairs{suffix}"
    table.write_csv(file) if suffix == ".csv" else table.write_parquet(file)
    metrics = evaluate(make_eval_set({"format": "table", "path": str(file)}, "t"))
    # images red, green, blue, magenta (red.png twice: one image with two texts). i2t: magenta's
    # best texts tie (red, blue, "red thing" at 0.71); row order puts "a red square" first: a miss,
    # the other 3 hit. t2i: "a red thing" finds the red image first, the second "a green square"
    # (red.png's) finds the green image first: 3 of 5. With 4 images every R@5 is 1.
    assert metrics["images"] == 4 and metrics["n"] == 5
    assert metrics["i2t_r1"] == pytest.approx(3 / 4) and metrics["t2i_r1"] == pytest.approx(3 / 5)
    assert metrics["i2t_r5"] == 1 and metrics["t2i_r5"] == 1
    assert "acc1" not in metrics  # no label column: retrieval only


def test_recall_at_k_and_accuracy_at_k_on_hand_made_embeddings():
    from curate_train.evalsets import retrieval_recall, topk_accuracy

    images = torch.eye(3)
    texts = torch.tensor([[0.0, 1, 0], [0.9, 0.1, 0], [0, 0, 1], [0.2, 0.0, 0.8]])
    # text 0 belongs to image 0 but points at image 1; text 3 belongs to image 1
    owner = [0, 0, 2, 1]
    recall = retrieval_recall(images, texts, owner, ks=(1, 2))
    # i2t: image 0 ranks texts 1,3,… (text 1 is its own) → hit; image 1 ranks text 0 first (not
    # its own), text 3 is last → miss @1 and @2; image 2 ranks text 2 first → hit.
    assert recall["i2t_r1"] == pytest.approx(2 / 3) and recall["i2t_r2"] == pytest.approx(2 / 3)
    # t2i: text 0 → image 1 first, image 0 second; text 1 → 0 ✓; text 2 → 2 ✓; text 3 → 2, then 0, then 1
    assert recall["t2i_r1"] == pytest.approx(2 / 4) and recall["t2i_r2"] == pytest.approx(3 / 4)
    accuracy = topk_accuracy(images, texts[:3], [1, 0, 2], ks=(1, 2))
    assert accuracy == {1: 1.0, 2: 1.0}


def test_an_eval_set_file_resolves_paths_from_its_folder_and_checks_templates(tmp_path):
    from curate_train.evalsets import load_eval_sets

    (tmp_path / "sets").mkdir()
    file = tmp_path / "sets" / "mine.yaml"
    file.write_text("- {format: imagefolder, path: ../folder, templates: ['a {}']}\n"
                    "- {name: pairs, format: table, path: pairs.csv}\n")
    first, second = load_eval_sets(file)
    assert Path(first.path) == tmp_path / "sets" / "../folder" and first.label == "folder"
    assert second.label == "pairs" and Path(second.path) == tmp_path / "sets" / "pairs.csv"
    file.write_text("{format: imagefolder, path: x, templates: ['no slot']}\n")
    with pytest.raises(UsageError, match="exactly one"):
        load_eval_sets(file)
    file.write_text("{format: imagefoldr, path: x}\n")
    with pytest.raises(UsageError, match="format"):
        load_eval_sets(file)


# -- the CLI: a real (random) tiny open_clip model in open_clip's local-dir: layout -------------

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import open_clip
    from curate_train.clip import export_local_dir, prepare

    work = tmp_path_factory.mktemp("tiny")
    name = prepare("tiny")
    torch.manual_seed(0)
    checkpoint = work / "epoch_0.pt"
    torch.save({"state_dict": open_clip.create_model(name).state_dict()}, checkpoint)
    return export_local_dir(checkpoint, name, work / "model")


def cli(args: list[str], capsys) -> tuple[int, str, str]:
    from curate.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.filterwarnings("ignore")
def test_eval_runs_a_local_dir_model_on_an_imagefolder_and_a_table(tmp_path, tiny_model, capsys):
    for i, color in enumerate(["red", "green", "blue", "red", "green", "blue", "magenta"]):
        solid(tmp_path / "folder" / color / f"{i}.png", color)
    pl.DataFrame({"path": [f"folder/{c}/{i}.png" for i, c in enumerate(["red", "green", "blue"])],
                  "caption": ["a red square", "a green square", "a blue square"]}).write_parquet(tmp_path / "p.parquet")
    (tmp_path / "sets.yaml").write_text("{name: pairs, format: table, path: p.parquet, text_column: caption}\n")
    code, out, err = cli(["train", "eval", "--model", f"local-dir:{tiny_model}", "--images", tmp_path / "folder",
                          "--template", "a {} shape", "--template", "something {}", "--eval-set",
                          tmp_path / "sets.yaml"], capsys)
    assert code == 0, err
    results = json.loads(out)
    assert set(results) == {"pairs", "folder"}
    assert results["folder"]["classes"] == 4 and results["folder"]["n"] == 7
    assert 0 <= results["folder"]["acc1"] <= 1
    assert {"i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5"} <= set(results["pairs"])
    # the folder as CHECKPOINT works the same
    code, again, err = cli(["train", "eval", tiny_model, "--images", tmp_path / "folder", "--template", "a {} shape",
                            "--template", "something {}"], capsys)
    assert code == 0, err
    assert json.loads(again)["folder"] == results["folder"]


@pytest.mark.parametrize("case", ["no_file", "no_column", "bad_image", "not_world", "no_sets", "bad_yaml_field",
                                  "no_checkpoint"])
@pytest.mark.filterwarnings("ignore")
def test_bad_eval_input_is_a_clear_error_with_exit_2(tmp_path, tiny_model, capsys, case):
    solid(tmp_path / "ok.png", "red")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    table = tmp_path / "t.csv"
    pl.DataFrame({"path": ["ok.png", "broken.png"], "label": ["a", "b"]}).write_csv(table)
    model = ["--model", f"local-dir:{tiny_model}"]
    args, expected = {
        "no_file": (["--eval-set", tmp_path / "missing.yaml"], "missing.yaml does not exist"),
        "no_column": (["--images", table, "--label-column", "lable", "--task", "classification"],
                      "no 'lable' column"),
        "bad_image": (["--images", table], "row 1: cannot read image"),
        "not_world": (["--world", tmp_path], "is not a world directory"),
        "no_sets": ([], "nothing to evaluate on"),
        "bad_yaml_field": (["--eval-set", tmp_path / "s.yaml"], "label_colum"),
        "no_checkpoint": ([tmp_path / "gone.pt", "--model", "tiny", "--images", table], "gone.pt does not exist"),
    }[case]
    (tmp_path / "s.yaml").write_text("{format: table, path: t.csv, label_colum: label}\n")
    code, out, err = cli(["train", "eval", *model, *args], capsys)
    assert code == 2, (out, err)
    assert expected in err and "Traceback" not in err and "internal error" not in err
    if case == "no_column":
        assert "did you mean 'label'" in err


def test_train_clip_options_are_checked_before_training(tmp_path, capsys):
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "sizes.json").write_text('{"00000.tar": 10}')
    base = ["train", "clip", shards, "--out", tmp_path / "out"]
    code, _, err = cli([*base, "--precision", "fp64"], capsys)
    assert code == 2 and "fp32" in err and "Traceback" not in err
    code, _, err = cli([*base, "--epochs", "2", "--samples", "100"], capsys)
    assert code == 2 and "not both" in err
    code, _, err = cli([*base, "--model", "nonesuch"], capsys)
    assert code == 2 and "unknown model 'nonesuch'" in err
    code, _, err = cli([*base, "--model", f"local-dir:{tmp_path}"], capsys)
    assert code == 2 and "open_clip_config.json" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", [["--lr", "-0.001"], ["--lr", "nan"], ["--epochs", "-2"]])
def test_train_clip_refuses_a_learning_rate_or_epochs_it_cannot_train_with(tmp_path, capsys, option):
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "sizes.json").write_text('{"00000.tar": 10}')
    code, _, err = cli(["train", "clip", shards, "--out", tmp_path / "out", *option], capsys)
    assert code == 2 and "--lr must be a positive number and --epochs at least 1" in err, err
    assert not (tmp_path / "out").exists()


def test_train_clip_into_an_earlier_runs_folder_is_refused_not_answered_with_its_checkpoint(tmp_path, capsys):
    """open_clip_train prints "Experiment already exists" and returns: the old epoch_1.pt was then
    reported (and exported) as the new model, with exit 0."""
    import open_clip
    from curate_train.clip import prepare

    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "sizes.json").write_text('{"00000.tar": 10}')
    earlier = tmp_path / "out" / "clip" / "checkpoints" / "epoch_1.pt"
    earlier.parent.mkdir(parents=True)
    torch.save({"state_dict": open_clip.create_model(prepare("tiny")).state_dict()}, earlier)
    (tmp_path / "out" / "clip" / "out.log").write_text("the earlier run's log\n")  # what open_clip_train looks for
    before = earlier.read_bytes()
    code, out, err = cli(["train", "clip", shards, "--out", tmp_path / "out", "--lr", "0.01"], capsys)
    assert code == 2, (out, err)
    assert f"{tmp_path / 'out' / 'clip'} already exists" in err and "give another --out or --name" in err
    assert "checkpoint:" not in out and earlier.read_bytes() == before
    assert not (tmp_path / "out" / "clip" / "model").exists()


def test_samples_become_whole_passes_rounded_up():
    from curate_train.clip import epochs_for_samples

    assert epochs_for_samples(100, 100) == 1
    assert epochs_for_samples(101, 100) == 2
    assert epochs_for_samples(1, 100) == 1
    assert epochs_for_samples(950, 100) == 10
    with pytest.raises(UsageError):
        epochs_for_samples(0, 100)


def test_the_precision_choices_are_open_clip_trains():
    from curate_train.clip import PRECISIONS
    from open_clip_train.params import parse_args

    for precision in PRECISIONS:
        assert parse_args(["--precision", precision]).precision == precision
    with pytest.raises(SystemExit):
        parse_args(["--precision", "fp64"])


def test_a_config_json_model_is_accepted(tmp_path):
    from curate_train.clip import TINY_CONFIG, resolve_model

    config = tmp_path / "mine.json"
    config.write_text(json.dumps({"model_cfg": json.loads(TINY_CONFIG.read_text()), "preprocess_cfg": {}}))
    choice = resolve_model(str(config))
    assert choice.name == "curate-config-mine" and choice.config["embed_dim"] == 64
    config.write_text("{}")
    with pytest.raises(UsageError, match="vision_cfg"):
        resolve_model(str(config))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # open_clip_train and webdataset warn about CPU runs and leaked handles
def test_what_train_clip_writes_is_a_model_by_path_for_eval_and_clip_score(tmp_path, capsys):
    from curate_export.sinks import WebDatasetSink
    from curate_train.clip import load_clip
    from safetensors import safe_open

    from curate.sink import SinkContext
    from curate.step import TableInput
    from tests.export.conftest import make_store

    table = make_store(tmp_path / "store", 24)
    source = tmp_path / "input.parquet"
    table.write_parquet(source)
    ctx = SinkContext(run_dir=tmp_path, spec_dir=tmp_path, seed=0, label="export", path="shards")
    WebDatasetSink(WebDatasetSink.Params(store_dir=str(tmp_path / "store"), samples_per_shard=16), ctx).write(
        TableInput([source], dict(table.schema)))
    pool = sum(json.loads((tmp_path / "shards" / "sizes.json").read_text()).values())
    code, out, err = cli(["train", "clip", tmp_path / "shards", "--out", tmp_path / "logs", "--name", "t",
                          "--samples", pool + 1, "--batch-size", 8, "--warmup", 1, "--threads", 1,
                          "--precision", "fp32"], capsys)
    assert code == 0, err[-3000:]
    assert f"--samples {pool + 1}: 2 pass(es) over {pool} samples" in err
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines()[-2:])
    checkpoint = Path(lines["checkpoint"])
    assert checkpoint.name == "epoch_2.pt"  # ceil((pool + 1) / pool) passes
    folder = Path(lines["model"].removeprefix("local-dir:"))
    assert folder == checkpoint.parent.parent / "model"
    assert sorted(p.name for p in folder.iterdir()) == ["open_clip_config.json", "open_clip_model.safetensors"]
    config = json.loads((folder / "open_clip_config.json").read_text())
    assert config["model_cfg"]["vision_cfg"]["image_size"] == 32 and config["preprocess_cfg"]["size"] in (32, [32, 32])
    with safe_open(str(folder / "open_clip_model.safetensors"), framework="pt") as handle:
        assert handle.get_tensor("logit_scale").dtype == torch.float32

    # the folder alone gives the same network as the .pt with its architecture
    by_path, preprocess, tokenizer = load_clip(lines["model"])
    by_checkpoint, _, _ = load_clip(checkpoint, "tiny")
    image = preprocess(Image.new("RGB", (32, 32), (200, 10, 10))).unsqueeze(0)
    with torch.no_grad():
        assert torch.equal(by_path.encode_image(image), by_checkpoint.encode_image(image))
        assert torch.equal(by_path.encode_text(tokenizer(["a red square"])),
                           by_checkpoint.encode_text(tokenizer(["a red square"])))

    # clip_score, in a spec run by `curate run`, with model: local-dir:<what train clip wrote>
    images = tmp_path / "images"
    rows = []
    for i, color in enumerate(["red", "green", "blue"]):
        solid(images / f"{i:03d}.jpg", color, 32)
        rows.append({"url": f"http://127.0.0.1/{i}.jpg", "alt_text": f"a {color} square",
                     "image": {"shard": str(images), "key": f"{i:03d}"}})
    pl.DataFrame(rows).write_parquet(tmp_path / "rows.parquet")
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: by-path\nsource: {format: parquet, path: rows.parquet}\n"
                    f"steps:\n  - step: clip_score\n    params: {{model: '{lines['model']}'}}\n"
                    "outputs:\n  - {format: parquet, path: scored.parquet}\n"
                    f"run: {{dir: '{tmp_path / 'run'}', seed: 0}}\n")
    code, out, err = cli(["validate", spec], capsys)
    assert code == 0, err
    code, out, err = cli(["run", spec], capsys)
    assert code == 0, err[-3000:]
    scored = pl.read_parquet(tmp_path / "run" / "scored.parquet")
    assert scored["clip_score"].null_count() == 0 and scored.height == 3
    assert scored["clip_score"].abs().max() <= 1.0001


def test_the_captioner_builds_its_tower_from_the_local_dir_folder(tiny_model):
    from curate_captioner.encoder import from_open_clip
    from curate_train.clip import load_clip
    from safetensors.torch import load_file

    tower, config = from_open_clip(f"local-dir:{tiny_model}", tiny_model / "open_clip_model.safetensors")
    weights = load_file(str(tiny_model / "open_clip_model.safetensors"))
    for key, value in tower.state_dict().items():
        assert torch.equal(value, weights[f"visual.{key}"]), key
    network, preprocess, _ = load_clip(f"local-dir:{tiny_model}")
    image = preprocess(Image.new("RGB", (32, 32), (10, 200, 10))).unsqueeze(0)
    with torch.no_grad():
        assert torch.allclose(tower(image), network.encode_image(image), atol=1e-6)


def test_a_pt_checkpoint_of_a_local_dir_architecture_loads_its_own_weights(tiny_model, tmp_path):
    from curate_train.clip import load_clip

    network, preprocess, tokenizer = load_clip(f"local-dir:{tiny_model}")
    state = {f"module.{k}": torch.zeros_like(v) if k == "text_projection" else v
             for k, v in network.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "epoch_1.pt")
    trained, _, _ = load_clip(tmp_path / "epoch_1.pt", f"local-dir:{tiny_model}")
    assert torch.count_nonzero(trained.text_projection) == 0  # the .pt's weights, not the folder's
    assert torch.count_nonzero(network.text_projection) > 0


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_a_trained_tiny_model_beats_chance_on_a_user_imagefolder(tmp_path, capsys):
    """Train on 40 solid-colour squares captioned 'a {colour} square' (10 passes, seed 0; 13 s on
    this box), then classify a user imagefolder of the same 4 colours at other sizes."""
    from curate_export.sinks import WebDatasetSink

    from curate.sink import SinkContext
    from curate.step import TableInput
    from tests.export.conftest import COLORS, make_store

    table = make_store(tmp_path / "store", 40, png_every=0)
    table.write_parquet(tmp_path / "in.parquet")
    ctx = SinkContext(run_dir=tmp_path, spec_dir=tmp_path, seed=0, label="e", path="shards")
    WebDatasetSink(WebDatasetSink.Params(store_dir=str(tmp_path / "store"), captions=None, samples_per_shard=64),
                   ctx).write(TableInput([tmp_path / "in.parquet"], dict(table.schema)))
    code, out, err = cli(["train", "clip", tmp_path / "shards", "--out", tmp_path / "logs", "--samples", 400,
                          "--batch-size", 8, "--warmup", 5, "--lr", 5e-3], capsys)
    assert code == 0, err[-3000:]
    model = out.strip().splitlines()[-1].removeprefix("model: ")
    for color, rgb in COLORS.items():
        for i, size in enumerate((20, 32, 48)):
            (tmp_path / "eval" / color).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (size, size), rgb).save(tmp_path / "eval" / color / f"{i}.png")
    code, out, err = cli(["train", "eval", "--model", model, "--images", tmp_path / "eval",
                          "--template", "a {} square"], capsys)
    assert code == 0, err[-3000:]
    metrics = json.loads(out)["eval"]
    assert metrics["chance"] == 0.25 and metrics["n"] == 12
    assert metrics["acc1"] > 0.5  # 1.0 when written


def test_clip_score_fingerprint_follows_the_weights_of_a_local_dir_model(tiny_model, tmp_path):
    import shutil

    from curate_clip.score import ClipScore
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    step = ClipScore(ClipScore.Params(model=f"local-dir:{folder}"))
    before = step.fingerprint_extra()
    weights = load_file(str(folder / "open_clip_model.safetensors"))
    save_file({k: v + 1 for k, v in weights.items()}, str(folder / "open_clip_model.safetensors"))
    assert step.fingerprint_extra() != before


def test_group_accuracy_is_the_accuracy_over_a_groups_images_among_all_classes(tmp_path):
    from curate_train.evalsets import check_groups, make_eval_set

    # images red, red, green, blue, blue; labels say red, green, green, blue, red: hits 0, 2, 3
    colors = ["red", "red", "green", "blue", "blue"]
    for i, color in enumerate(colors):
        solid(tmp_path / "images" / f"{i}.png", color)
    pl.DataFrame({"path": [f"images/{i}.png" for i in range(5)],
                  "label": ["red", "green", "green", "blue", "red"]}).write_parquet(tmp_path / "eval.parquet")
    fields = {"format": "table", "path": str(tmp_path / "eval.parquet"), "templates": ["a {} thing"],
              "groups": {"head": ["red"], "tail": ["green", "blue"]}}
    evalset = make_eval_set(fields, "t")
    check_groups(evalset)
    metrics = evaluate(evalset)
    assert metrics["acc1"] == pytest.approx(3 / 5)
    # head: rows 0 (hit) and 4 (a blue image labelled red: miss); tail: rows 1 (miss), 2, 3 (hits)
    assert metrics["acc1_head"] == pytest.approx(1 / 2) and metrics["n_head"] == 2
    assert metrics["acc1_tail"] == pytest.approx(2 / 3) and metrics["n_tail"] == 3
    bad = make_eval_set({**fields, "groups": {"tail": ["gren"]}}, "t")
    for check in (check_groups, evaluate):
        with pytest.raises(UsageError) as error:
            check(bad)
        assert "group 'tail' names 'gren'" in str(error.value) and "did you mean 'green'" in str(error.value)
    with pytest.raises(UsageError, match="must be letters"):
        make_eval_set({**fields, "groups": {"the tail": ["green"]}}, "t")
    with pytest.raises(UsageError, match="lists no classes"):
        make_eval_set({**fields, "groups": {"tail": []}}, "t")
