"""One source of defaults: `curate captioner train|caption` and the train_captioner step take
theirs from TrainConfig, CaptionerConfig and the decoding constants."""

from __future__ import annotations

from curate_captioner.cli import NEW_MAPPER, caption, train
from curate_captioner.config import TEMPERATURE, TOP_P, CaptionerConfig, TrainConfig, defaults
from curate_captioner.step import TrainCaptioner


def _option_defaults(command) -> dict[str, object]:
    return {param.name: param.default for param in command.params if param.name and not param.required}


def test_train_options_default_to_the_config_models():
    options = _option_defaults(train)  # --stage is required: no default to compare
    shared = {name: default for name, default in defaults(TrainConfig).items() if name in options}
    assert set(shared) >= {"steps", "batch_size", "lr", "warmup", "seed", "log_every", "checkpoint_every",
                           "device", "precision", "train_encoder", "encoder_lr"}
    assert {name: options[name] for name in shared} == shared
    architecture = {name: default for name, default in defaults(CaptionerConfig).items()
                    if name in options and name not in NEW_MAPPER}
    assert set(architecture) >= {"features", "max_patch_tokens", "mapper_heads", "prefix_length", "name"}
    assert {name: options[name] for name in architecture} == architecture


def test_choices_are_the_config_literals():
    choices = {param.name: list(param.type.choices) for param in train.params if hasattr(param.type, "choices")}
    assert choices["precision"] == ["auto", "fp32", "bf16"]
    assert choices["features"] == ["pooled", "pooled+tokens"]


def test_caption_decodes_with_the_config_defaults():
    options = _option_defaults(caption)
    assert (options["temperature"], options["top_p"]) == (TEMPERATURE, TOP_P)


def test_the_train_step_defaults_are_the_config_defaults():
    step = defaults(TrainCaptioner.Params)
    config = defaults(TrainConfig)
    assert {name: step[name] for name in ("stage", "steps", "batch_size", "lr", "device", "precision")} == \
        {name: config[name] for name in ("stage", "steps", "batch_size", "lr", "device", "precision")}
