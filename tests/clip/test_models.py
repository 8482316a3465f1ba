"""Model choices are checked at plan time: hub names fail offline with a way out."""

from __future__ import annotations

import pytest

from curate.errors import SpecError
from curate.plan import make_plan
from curate.spec import load_spec_text
from curate_clip.models import WORLD_CHECKPOINT, check_model

SPEC = """
name: t
source: {{format: parquet, path: rows.parquet}}
steps:
  - step: clip_score
    params: {params}
"""


def _plan(tmp_path, params, monkeypatch):
    import polars as pl

    from curate.plugins import get_plugin_manager
    from curate.schema import Image

    monkeypatch.delenv("CURATE_ALLOW_HUB", raising=False)
    pl.DataFrame({"url": ["u"], "alt_text": ["t"], "image": [None]},
                 schema={"url": pl.Utf8, "alt_text": pl.Utf8, "image": Image}).write_parquet(tmp_path / "rows.parquet")
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(params=params))
    return make_plan(load_spec_text(path.read_text(), path), get_plugin_manager(), tmp_path / "run")


def test_hub_model_fails_at_plan_time_saying_how_to_use_a_local_file(tmp_path, monkeypatch):
    with pytest.raises(SpecError) as error:
        _plan(tmp_path, "{model: 'hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K'}", monkeypatch)
    text = str(error.value)
    assert "steps[0].params" in text and "offline" in text and "checkpoint:" in text


def test_pretrained_tag_fails_at_plan_time(tmp_path, monkeypatch):
    with pytest.raises(SpecError, match="would be downloaded"):
        _plan(tmp_path, "{model: ViT-B-32, pretrained: openai}", monkeypatch)


def test_missing_checkpoint_file_is_named(tmp_path, monkeypatch):
    with pytest.raises(SpecError, match="does not exist"):
        _plan(tmp_path, "{model: ViT-B-32, checkpoint: /nowhere/w.safetensors}", monkeypatch)


def test_the_default_world_clip_plans(tmp_path, monkeypatch):
    plan = _plan(tmp_path, "{}", monkeypatch)
    assert plan.steps[-1].writes() == {"clip_score": __import__("polars").Float32}


def test_the_world_checkpoint_ships_and_is_small():
    assert WORLD_CHECKPOINT.exists()
    assert WORLD_CHECKPOINT.stat().st_size <= 20 * 1024 * 1024
    assert check_model("world-clip-tiny", None, None) == []


@pytest.fixture(scope="module")
def world_state():
    import open_clip
    import torch

    from curate_clip.models import WORLD_MODEL, register_configs

    pytest.importorskip("open_clip")
    register_configs()
    torch.manual_seed(0)
    return {k: v.clone() for k, v in open_clip.create_model(WORLD_MODEL).state_dict().items()}


@pytest.mark.parametrize("form", ["open_clip_train .pt", "safetensors"])
def test_a_siglip_checkpoint_loads_into_the_world_config(tmp_path, world_state, form):
    """open_clip_train --siglip saves a logit_bias the CLIP config has no slot for; clip_score
    must load it (its score is the cosine) instead of failing inside open_clip."""
    import torch
    from safetensors.torch import save_file

    from curate_clip.models import WORLD_MODEL, has_logit_bias, load_clip

    state = {**world_state, "logit_bias": torch.tensor([-10.0])}
    if form == "safetensors":
        path = tmp_path / "siglip.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        path = tmp_path / "epoch_1.pt"
        torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in state.items()}}, str(path))
    assert has_logit_bias(path)
    clip = load_clip(WORLD_MODEL, checkpoint=str(path), device="cpu")
    assert float(clip.model.logit_bias.detach()) == -10.0
    towers = clip.model.state_dict()
    assert all(torch.equal(towers[k], v) for k, v in world_state.items() if k != "logit_scale")


def test_a_siglip_run_from_a_clip_checkpoint_starts_at_siglips_scale_and_bias(tmp_path, world_state):
    import math

    import torch

    from curate_clip.training.train import siglip_init

    source = tmp_path / "epoch_2.pt"
    torch.save({"epoch": 2, "state_dict": {f"module.{k}": v for k, v in world_state.items()}}, str(source))
    state = torch.load(str(siglip_init(source, tmp_path / "init.pt")), weights_only=True)["state_dict"]
    assert math.isclose(float(state["module.logit_scale"]), math.log(10), rel_tol=1e-6)
    assert float(state["module.logit_bias"]) == -10.0
    assert all(torch.equal(state[f"module.{k}"], v) for k, v in world_state.items() if k != "logit_scale")


def test_an_architecture_that_does_not_exist_fails_at_plan_time(tmp_path, monkeypatch):
    with pytest.raises(SpecError) as error:
        _plan(tmp_path, "{model: ViT-B-99}", monkeypatch)
    text = str(error.value)
    assert "steps[0].params" in text and "'ViT-B-99' is not an open_clip architecture" in text and "ViT-B-32" in text


def test_weights_of_another_architecture_fail_at_plan_time_naming_the_shapes(tmp_path, monkeypatch):
    with pytest.raises(SpecError) as error:
        _plan(tmp_path, f"{{model: ViT-B-32, checkpoint: '{WORLD_CHECKPOINT}'}}", monkeypatch)
    text = str(error.value)
    assert "does not fit 'ViT-B-32'" in text and "visual.conv1.weight is [128, 3, 16, 16]" in text


def test_a_checkpoint_missing_blocks_does_not_fit(tmp_path, monkeypatch, world_state):
    from safetensors.torch import save_file

    kept = {k: v.contiguous() for k, v in world_state.items() if not k.startswith("visual.transformer.resblocks.2.")}
    save_file(kept, str(tmp_path / "short.safetensors"))
    with pytest.raises(SpecError, match="visual.transformer.resblocks has 2 blocks, 'world-clip-tiny' has 3"):
        _plan(tmp_path, f"{{checkpoint: '{tmp_path / 'short.safetensors'}'}}", monkeypatch)


@pytest.mark.parametrize("content", [b"\xff" * 64, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......",
                                     b"\x02\x00\x00\x00\x00\x00\x00\x00{}", b"abc"],
                         ids=["header too large", "header not json", "no tensors", "too short"])
def test_a_broken_safetensors_file_fails_at_plan_time_and_at_load(tmp_path, monkeypatch, content):
    from curate_clip.checkpoints import ModelFileError
    from curate_clip.models import load_clip

    (tmp_path / "w.safetensors").write_bytes(content)
    with pytest.raises(SpecError, match="w.safetensors (is not a safetensors file|holds no weights)"):
        _plan(tmp_path, f"{{checkpoint: '{tmp_path / 'w.safetensors'}'}}", monkeypatch)
    with pytest.raises(ModelFileError) as error:
        load_clip(checkpoint=str(tmp_path / "w.safetensors"), device="cpu")
    assert error.value.exit_code == 2 and "SafetensorError" not in str(error.value)


class _WritesMarker:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_checkpoint_is_refused_at_plan_time_without_running_it(tmp_path, monkeypatch, world_state):
    import torch

    marker = tmp_path / "pwned"
    torch.save({"state_dict": world_state, "extra": _WritesMarker(marker)}, str(tmp_path / "epoch_1.pt"))
    with pytest.raises(SpecError) as error:
        _plan(tmp_path, f"{{checkpoint: '{tmp_path / 'epoch_1.pt'}'}}", monkeypatch)
    text = str(error.value)
    assert "epoch_1.pt is refused" in text and "Unsupported global: GLOBAL io.open" in text
    assert "weights_only=False" not in text and not marker.exists()


def test_cli_validate_refuses_bad_weights_with_exit_2(tmp_path, curate_cli):
    import polars as pl

    from tests.conftest import REPO

    pl.DataFrame({"url": ["u"], "alt_text": ["t"], "image": [None]}).write_parquet(tmp_path / "rows.parquet")
    (tmp_path / "w.safetensors").write_bytes(b"\xff" * 64)
    (tmp_path / "spec.yaml").write_text(SPEC.format(params=f"{{checkpoint: '{tmp_path / 'w.safetensors'}'}}"))
    result = curate_cli("validate", str(tmp_path / "spec.yaml"), cwd=tmp_path, pythonpath=[REPO, REPO / "plugins"])
    assert result.code == 2, result
    assert "is not a safetensors file" in result.stderr + result.stdout
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
