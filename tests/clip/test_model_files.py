"""Model files and folders from someone else: nothing in them runs, downloads, hangs the plan,
allocates without bound, silently scores with random weights or ends in an internal error."""

from __future__ import annotations

import json
import os
import threading

import pytest

from curate.errors import CurateError, SpecError
from curate_clip.checkpoints import ModelFileError
from tests.clip.test_models import SPEC, _plan

WORLD_CONFIG = {"embed_dim": 128,
                "vision_cfg": {"image_size": 64, "layers": 3, "width": 128, "head_width": 32, "patch_size": 16},
                "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 2}}


@pytest.fixture(scope="module")
def world_state():
    import open_clip
    import torch

    from curate_clip.models import WORLD_MODEL, register_configs

    register_configs()
    torch.manual_seed(0)
    return {k: v.clone().contiguous() for k, v in open_clip.create_model(WORLD_MODEL).state_dict().items()}


def model_folder(path, state=None, config=None, weights="open_clip_model.safetensors", **changes):
    """An open_clip local-dir: folder of the world CLIP's architecture, with ``changes`` merged
    into its config sections (``text_cfg={...}``)."""
    from safetensors.torch import save_file

    config = json.loads(json.dumps(config if config is not None else WORLD_CONFIG))
    for section, values in changes.items():
        config[section].update(values)
    path.mkdir(parents=True, exist_ok=True)
    (path / "open_clip_config.json").write_text(json.dumps({"model_cfg": config}))
    if state is not None:
        save_file(state, str(path / weights))
    return path


def plan_error(tmp_path, monkeypatch, params: str) -> str:
    with pytest.raises(SpecError) as error:
        _plan(tmp_path, params, monkeypatch)
    text = str(error.value)
    assert "steps[0].params" in text and "internal error" not in text
    return text


# -- 1. a folder's config must not make open_clip import code or download ----------------------
def malicious_folder(path, state, marker):
    """text_cfg names a Hugging Face tokenizer with trust_remote_code, and the folder's
    tokenizer_config.json maps AutoTokenizer to its own tok.py, which writes ``marker``."""
    folder = model_folder(path, state, text_cfg={"hf_tokenizer_name": "anything",
                                                 "tokenizer_kwargs": {"trust_remote_code": True}})
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"auto_map": {"AutoTokenizer": ["tok.Tok", None]}, "tokenizer_class": "Tok"}))
    (folder / "tok.py").write_text(f"with open({str(marker)!r}, 'w') as handle:\n    handle.write('ran')\n"
                                   "from transformers import PreTrainedTokenizer\n"
                                   "class Tok(PreTrainedTokenizer):\n    pass\n")
    return folder


def test_the_malicious_folder_does_run_its_code_through_open_clip_alone(tmp_path, world_state):
    """The folder below is a real attack: open_clip's own tokenizer lookup runs its tok.py."""
    pytest.importorskip("transformers")
    import open_clip

    marker = tmp_path / "ran"
    folder = malicious_folder(tmp_path / "evil", world_state, marker)
    with pytest.raises(Exception):  # noqa: B017 - the class it fails with is beside the point
        open_clip.get_tokenizer(f"local-dir:{folder}")
    assert marker.exists()


@pytest.mark.parametrize("allow_hub", ["", "1"])
def test_a_folder_whose_tokenizer_would_run_its_code_is_refused_and_nothing_runs(tmp_path, monkeypatch,
                                                                                world_state, allow_hub):
    from curate_clip.models import load_clip

    marker = tmp_path / "ran"
    folder = malicious_folder(tmp_path / "evil", world_state, marker)
    text = plan_error(tmp_path, monkeypatch, f"{{model: 'local-dir:{folder}'}}")
    assert "hf_tokenizer_name" in text and "tokenizer_kwargs" in text and "trust_remote_code" in text
    monkeypatch.setenv("CURATE_ALLOW_HUB", allow_hub)  # a machine that may download: still refused
    with pytest.raises(ModelFileError, match="hf_tokenizer_name"):
        load_clip(f"local-dir:{folder}", device="cpu")
    assert not marker.exists()


@pytest.mark.parametrize(("section", "key", "value"), [
    ("text_cfg", "hf_model_name", "roberta-base"),
    ("text_cfg", "hf_model_pretrained", True),
    ("text_cfg", "hf_tokenizer_name", "roberta-base"),
    ("text_cfg", "tokenizer_kwargs", {"clean": "lower"}),
    ("vision_cfg", "timm_model_pretrained", True),
    ("vision_cfg", "timm_model_name", "hf-hub:timm/vit_base_patch16_224"),
])
def test_config_keys_that_download_or_import_are_refused_at_plan_time_naming_the_key(tmp_path, monkeypatch,
                                                                                    world_state, section, key,
                                                                                    value):
    folder = model_folder(tmp_path / "m", world_state, **{section: {key: value}})
    assert key in plan_error(tmp_path, monkeypatch, f"{{model: 'local-dir:{folder}'}}")


def test_trust_remote_code_anywhere_in_a_config_is_refused(tmp_path, monkeypatch, world_state):
    folder = model_folder(tmp_path / "m", world_state, vision_cfg={"extra": {"trust_remote_code": True}})
    assert "trust_remote_code" in plan_error(tmp_path, monkeypatch, f"{{model: 'local-dir:{folder}'}}")


def test_an_open_clip_architecture_with_a_hub_tokenizer_is_refused_offline():
    from curate_clip.models import WORLD_CHECKPOINT, check_model

    problems = check_model("ViT-B-16-SigLIP", None, str(WORLD_CHECKPOINT))
    assert any("hf_tokenizer_name 'timm/ViT-B-16-SigLIP'" in p and "offline" in p for p in problems)


def test_load_clip_never_asks_for_a_tokenizer_with_remote_code(tmp_path, world_state, monkeypatch):
    import open_clip

    from curate_clip.models import load_clip

    asked = []
    monkeypatch.setattr(open_clip, "get_tokenizer", lambda *a, **k: asked.append(k))
    clip = load_clip(f"local-dir:{model_folder(tmp_path / 'm', world_state)}", device="cpu")
    assert asked == [] and type(clip.tokenizer.inner).__name__ == "SimpleTokenizer"
    assert clip.tokenizer.context_length == 32


# -- 2. a folder without the weights open_clip reads ------------------------------------------
def test_a_folder_without_weights_is_refused_naming_the_files_looked_for(tmp_path, monkeypatch):
    from curate_clip.models import load_clip

    folder = model_folder(tmp_path / "m")
    text = plan_error(tmp_path, monkeypatch, f"{{model: 'local-dir:{folder}'}}")
    assert "no weights file" in text and "open_clip_model.safetensors" in text and "randomly" in text
    with pytest.raises(ModelFileError, match="open_clip_pytorch_model.bin"):
        load_clip(f"local-dir:{folder}", device="cpu")


def test_weights_under_a_name_open_clip_does_not_prefer_are_refused(tmp_path, monkeypatch, world_state):
    folder = model_folder(tmp_path / "m", world_state, weights="epoch_3.safetensors")
    text = plan_error(tmp_path, monkeypatch, f"{{model: 'local-dir:{folder}'}}")
    assert "epoch_3.safetensors" in text and "rename" in text


def test_model_safetensors_is_what_open_clip_loads_and_what_the_cache_key_digests(tmp_path, monkeypatch,
                                                                                  world_state):
    import torch
    from safetensors.torch import save_file

    from curate_clip.models import load_clip
    from curate_clip.score import weights_digest

    folder = model_folder(tmp_path / "m", world_state, weights="model.safetensors")
    _plan(tmp_path, f"{{model: 'local-dir:{folder}'}}", monkeypatch)
    clip = load_clip(f"local-dir:{folder}", device="cpu")
    assert torch.equal(clip.model.state_dict()["visual.conv1.weight"], world_state["visual.conv1.weight"])
    before = weights_digest(f"local-dir:{folder}", None)
    save_file({k: v + 1 for k, v in world_state.items()}, str(folder / "model.safetensors"))
    assert weights_digest(f"local-dir:{folder}", None) != before


def test_a_stand_in_folder_plans_inside_weights_to_come_but_never_loads(tmp_path, monkeypatch):
    from curate_clip.api import weights_to_come
    from curate_clip.models import load_clip

    folder = model_folder(tmp_path / "m")
    with weights_to_come(folder):
        _plan(tmp_path, f"{{model: 'local-dir:{folder}'}}", monkeypatch)
        with pytest.raises(ModelFileError, match="no weights yet"):
            load_clip(f"local-dir:{folder}", device="cpu")
    plan_error(tmp_path, monkeypatch, f"{{model: 'local-dir:{folder}'}}")


# -- 3. paths that are not regular files --------------------------------------------------------
def _not_files(tmp_path):
    (tmp_path / "dir.safetensors").mkdir()
    os.symlink("/dev/zero", tmp_path / "zero.safetensors")
    os.mkfifo(tmp_path / "fifo.safetensors")
    return {"dir.safetensors": "a folder", "zero.safetensors": "a character device", "fifo.safetensors": "a pipe (FIFO)"}


def test_a_checkpoint_that_is_not_a_regular_file_is_refused_at_plan_time(tmp_path, monkeypatch):
    for name, kind in _not_files(tmp_path).items():
        text = plan_error(tmp_path, monkeypatch, f"{{checkpoint: '{tmp_path / name}'}}")
        assert f"{name} is {kind}" in text and "not a regular file" in text


def test_validate_with_dev_zero_or_a_fifo_as_checkpoint_ends_at_once(tmp_path, curate_cli):
    import polars as pl

    from tests.conftest import REPO

    pl.DataFrame({"url": ["u"], "alt_text": ["t"], "image": [None]}).write_parquet(tmp_path / "rows.parquet")
    for name in ("zero.safetensors", "fifo.safetensors"):
        if not os.path.lexists(tmp_path / name):
            _not_files(tmp_path)
        (tmp_path / "spec.yaml").write_text(SPEC.format(params=f"{{checkpoint: '{tmp_path / name}'}}"))
        result = curate_cli("validate", str(tmp_path / "spec.yaml"), cwd=tmp_path, timeout=60,
                            pythonpath=[REPO, REPO / "plugins"])
        assert result.code == 2 and "not a regular file" in result.stderr + result.stdout, result


def test_a_folder_whose_weights_are_a_fifo_is_refused_and_its_digest_does_not_block(tmp_path, monkeypatch):
    from curate_clip.score import weights_digest

    folder = model_folder(tmp_path / "m")
    os.mkfifo(folder / "open_clip_model.safetensors")
    assert "is a pipe (FIFO)" in plan_error(tmp_path, monkeypatch, f"{{model: 'local-dir:{folder}'}}")
    done = []
    thread = threading.Thread(target=lambda: done.append(weights_digest(f"local-dir:{folder}", None)), daemon=True)
    thread.start()
    thread.join(10)
    assert done and done[0] is not None  # the config's digest alone


def test_file_digest_refuses_what_is_not_a_regular_file_without_reading_it(tmp_path):
    from curate.digests import file_digest

    for name, kind in _not_files(tmp_path).items():
        failed = []

        def digest(path=tmp_path / name):
            try:
                file_digest(path)
            except CurateError as error:
                failed.append(str(error))

        thread = threading.Thread(target=digest, daemon=True)
        thread.start()
        thread.join(10)
        assert failed and kind in failed[0], name


# -- 4. broken files: a ModelFileError naming the file and the problem --------------------------
def _header_disagrees_with_data(path):
    """A safetensors file whose header gives a tensor of 16 floats 4 bytes of data (the offsets
    themselves are consistent with the file)."""
    header = json.dumps({"logit_bias": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 4]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)


def test_a_safetensors_header_that_disagrees_with_its_data_is_a_model_file_error(tmp_path, monkeypatch,
                                                                               world_state):
    import curate_clip.models
    from curate_clip.models import load_clip

    path = tmp_path / "w.safetensors"
    _header_disagrees_with_data(path)
    text = plan_error(tmp_path, monkeypatch, f"{{checkpoint: '{path}'}}")
    assert "w.safetensors is corrupt: tensor 'logit_bias' of shape [4, 4]" in text
    monkeypatch.setattr(curate_clip.models, "check_model", lambda *args: [])  # what load sees past the plan
    with pytest.raises(ModelFileError, match="w.safetensors: it is not a valid safetensors file"):
        load_clip(checkpoint=str(path), device="cpu")


def test_a_pickled_bin_in_a_folder_is_refused_without_advice_to_unpickle(tmp_path, monkeypatch, world_state):
    import torch

    import curate_clip.models
    from curate_clip.models import load_clip
    from tests.clip.test_models import _WritesMarker

    marker = tmp_path / "pwned"
    folder = model_folder(tmp_path / "m")
    torch.save({"state_dict": world_state, "x": _WritesMarker(marker)}, str(folder / "open_clip_pytorch_model.bin"))
    text = plan_error(tmp_path, monkeypatch, f"{{model: 'local-dir:{folder}'}}")
    assert "open_clip_pytorch_model.bin is refused" in text and "Unsupported global" in text
    monkeypatch.setattr(curate_clip.models, "check_model", lambda *args: [])
    with pytest.raises(ModelFileError) as error:
        load_clip(f"local-dir:{folder}", device="cpu")
    message = str(error.value)
    assert "open_clip_pytorch_model.bin" in message and "objects other than tensors" in message
    assert "weights_only=False" not in message and not marker.exists()


@pytest.mark.parametrize(("config", "expected"), [
    ([1, 2], "its config is a list"),
    ({"embed_dim": 128, "vision_cfg": {}}, "text_cfg is missing"),
    ({**WORLD_CONFIG, "text_cfg": {**WORLD_CONFIG["text_cfg"], "width": "wide"}}, "text_cfg.width is 'wide'"),
    ({**WORLD_CONFIG, "vision_cfg": {**WORLD_CONFIG["vision_cfg"], "layers": [1, 2]}}, "vision_cfg.layers is [1, 2]"),
], ids=["list", "no text_cfg", "string width", "bad layers"])
def test_a_malformed_config_is_a_plan_error_naming_the_field(tmp_path, monkeypatch, world_state, config, expected):
    folder = model_folder(tmp_path / "m", world_state, config=config)
    assert expected in plan_error(tmp_path, monkeypatch, f"{{model: 'local-dir:{folder}'}}")


def test_a_tensor_shape_the_plan_does_not_check_names_the_key_at_load(tmp_path, world_state):
    import torch
    from safetensors.torch import save_file

    from curate_clip.models import load_clip

    key = "visual.transformer.resblocks.0.mlp.c_fc.weight"
    save_file({**world_state, key: torch.zeros(7, 128)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(ModelFileError) as error:
        load_clip(checkpoint=str(tmp_path / "w.safetensors"), device="cpu")
    assert f"size mismatch for {key}" in str(error.value) and "w.safetensors" in str(error.value)


# -- 5. sizes no CLIP has ----------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "expected"), [
    ({"vision_cfg": {"width": 16384, "layers": 48}}, "billion parameters, more than curate's limit of 6"),
    ({"text_cfg": {"context_length": 200000}}, "context_length is 200,000 tokens, more than curate's limit of 1,024"),
    ({"vision_cfg": {"image_size": 20000}}, "image_size is 20000, more than curate's limit of 1024"),
    ({"vision_cfg": {"image_size": 1024, "patch_size": 2}}, "262,144 patches, more than curate's limit of 4,096"),
    ({"text_cfg": {"vocab_size": 10**9}}, "billion parameters"),
    ({"text_cfg": {"layers": 100000}}, "layers is 100000, more than curate's limit of 256"),
], ids=["width", "context", "image", "patches", "vocabulary", "layers"])
def test_a_config_beyond_the_size_bounds_is_refused_before_anything_is_built(tmp_path, monkeypatch, world_state,
                                                                             changes, expected):
    folder = model_folder(tmp_path / "m", world_state, **changes)
    assert expected in plan_error(tmp_path, monkeypatch, f"{{model: 'local-dir:{folder}'}}")


def test_every_open_clip_architecture_fits_the_bounds():
    from curate_clip.checkpoints import config_problems, open_clip_configs

    configs = open_clip_configs()
    assert len(configs) > 100
    for name, path in configs.items():
        assert config_problems(name, json.loads(path.read_text()), local=False, offline=False) == [], name


@pytest.mark.parametrize("name", ["world-clip-tiny", "ViT-B-32", "RN50", "ViT-L-14", "coca_ViT-B-32"])
def test_the_parameter_estimate_is_close_to_what_open_clip_builds(name):
    import open_clip
    import torch

    from curate_clip.checkpoints import estimated_parameters, open_clip_configs
    from curate_clip.models import register_configs

    register_configs()
    with torch.device("meta"):
        model = open_clip.create_model(name, device="meta")
    built = sum(p.numel() for p in model.parameters())
    estimate = estimated_parameters(json.loads(open_clip_configs()[name].read_text()))
    assert abs(estimate - built) / built < 0.15, (estimate, built)


# -- 6. a local file as pretrained; a checkpoint beside a local-dir model -----------------------
def test_a_local_file_as_pretrained_says_to_use_checkpoint(tmp_path, monkeypatch):
    from curate_clip.models import WORLD_CHECKPOINT

    text = plan_error(tmp_path, monkeypatch, f"{{model: world-clip-tiny, pretrained: '{WORLD_CHECKPOINT}'}}")
    assert f"set `checkpoint: {WORLD_CHECKPOINT}`" in text and "would be downloaded" not in text


def test_a_checkpoint_with_a_local_dir_model_is_refused_as_unused(tmp_path, monkeypatch, world_state):
    from curate_clip.models import WORLD_CHECKPOINT

    folder = model_folder(tmp_path / "m", world_state)
    text = plan_error(tmp_path, monkeypatch, f"{{model: 'local-dir:{folder}', checkpoint: '{WORLD_CHECKPOINT}'}}")
    assert "would not be used" in text


def test_train_world_refuses_a_model_config_whose_tokenizer_would_run_code(tmp_path):
    """``curate clip train-world --model-config``: open_clip_train builds the config's tokenizer."""
    from curate_clip.training.train import main

    marker = tmp_path / "ran"
    folder = malicious_folder(tmp_path / "evil", None, marker)
    config = json.loads(json.dumps(WORLD_CONFIG))
    config["text_cfg"].update(hf_tokenizer_name=str(folder), tokenizer_kwargs={"trust_remote_code": True})
    (tmp_path / "mine.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match="--model-config: .*trust_remote_code"):
        main(["--out", str(tmp_path / "out"), "--n", "8", "--epochs", "1", "--model-config", str(tmp_path / "mine.json")])
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_train_world_on_fewer_samples_than_a_batch_stops_before_training(tmp_path):
    """open_clip_train drops a partial batch and repeats its pass until it has one: it never ended."""
    import subprocess
    import sys

    from tests.conftest import cli_env

    completed = subprocess.run([sys.executable, "-m", "curate_clip.training.train", "--out", str(tmp_path / "out"),
                                "--n", "8", "--epochs", "1", "--batch-size", "512"],
                               env=cli_env(), capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 1, completed.stderr
    assert "fewer than one batch of 512" in completed.stderr
    assert not (tmp_path / "out" / "logs").exists()


@pytest.mark.parametrize("suffix", [".pt", ".bin"])
def test_an_untrusted_specs_checkpoint_must_be_safetensors(tmp_path, world_state, suffix):
    """A torch state dict is a pickle, read by torch's restricted unpickler, which has had
    code-execution holes; a stranger's spec may name only safetensors weights (security probe)."""
    import torch

    from curate_clip.models import WORLD_MODEL, check_model

    weights = tmp_path / f"weights{suffix}"
    torch.save(world_state, str(weights))
    refused = check_model(WORLD_MODEL, None, str(weights), untrusted=True)
    assert len(refused) == 1 and "is a torch pickle" in refused[0] and ".safetensors" in refused[0]
    assert not any("torch pickle" in p for p in check_model(WORLD_MODEL, None, str(weights), untrusted=False))
    assert check_model(WORLD_MODEL, None, None, untrusted=True) == []  # the shipped safetensors
