"""Hostile captioner directories are refused at plan time (configs and the safetensors header only,
nothing loaded, nothing hangs) with the file and field at fault, and ``Captioner.load`` turns
whatever still fails into a ModelDirectoryError naming the directory: never an internal error,
never a pickle, never a directory's own code."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from curate.errors import CurateError, SpecError
from curate.plugins import PluginManager
from curate.testing import run_step
from curate_captioner.config import CONFIG_FILE, DECODER_CONFIG_FILE, WEIGHTS_FILE
from curate_captioner.model import Captioner
from curate_captioner.modelfiles import (MAX_PARAMETERS, MAX_PARAMETERS_ENV, ModelDirectoryError, captioner_problems,
                                         decoder_config_problems)
from tests.captioner.conftest import images


@pytest.fixture
def copy_of(saved_captioner: Path, tmp_path: Path) -> Callable[[], Path]:
    def copy() -> Path:
        target = tmp_path / f"captioner-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(saved_captioner, target)
        return target

    return copy


def edit(directory: Path, name: str, change: Callable[[dict[str, Any]], None]) -> Path:
    path = directory / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return directory


def problems_within(model: Path, seconds: float = 20) -> list[str]:
    """captioner_problems in a thread: a check that opened a FIFO would never return."""
    found: list[list[str]] = []
    worker = threading.Thread(target=lambda: found.append(captioner_problems(str(model))), daemon=True)
    worker.start()
    worker.join(seconds)
    assert found, f"checking {model} did not finish in {seconds} s"
    return found[0]


HOSTILE: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "unknown_model_type": (lambda d: edit(d, DECODER_CONFIG_FILE, lambda c: c.update(model_type="evilnet")),
                           [DECODER_CONFIG_FILE, "model_type 'evilnet'"]),
    "extra_key": (lambda d: edit(d, CONFIG_FILE, lambda c: c["captioner"].update(evil=1)), [CONFIG_FILE, "captioner.evil"]),
    "negative_encoder_layers": (lambda d: edit(d, CONFIG_FILE, lambda c: c["encoder"]["vision_cfg"].update(layers=-1)),
                                [CONFIG_FILE, "encoder.vision_cfg.layers", "got -1"]),
    "huge_mapper": (lambda d: edit(d, CONFIG_FILE, lambda c: c["captioner"].update(mapper_width=65536, mapper_layers=64)),
                    [CONFIG_FILE, "captioner.mapper_width", "16384"]),
    "mapper_at_its_bounds": (lambda d: edit(d, CONFIG_FILE, lambda c: c["captioner"].update(mapper_width=16384,
                                                                                             mapper_layers=64)),
                             ["about", "parameters", MAX_PARAMETERS_ENV]),
    "huge_vocabulary": (lambda d: edit(d, DECODER_CONFIG_FILE, lambda c: c.update(vocab_size=2_000_000_000)),
                        [DECODER_CONFIG_FILE, "vocab_size", "2,000,000,000"]),
    "huge_prefix": (lambda d: edit(d, CONFIG_FILE, lambda c: c["captioner"].update(prefix_length=10_000_000)),
                    [CONFIG_FILE, "captioner.prefix_length"]),
    "heads_do_not_divide": (lambda d: edit(d, CONFIG_FILE, lambda c: c["captioner"].update(mapper_heads=3)),
                            [CONFIG_FILE, "mapper_heads"]),
    "encoder_blocks_disagree": (lambda d: edit(d, CONFIG_FILE, lambda c: c["encoder"]["vision_cfg"].update(layers=3)),
                                [WEIGHTS_FILE, "encoder blocks", "encoder.vision_cfg.layers says 3"]),
    "hub_kernel": (lambda d: edit(d, DECODER_CONFIG_FILE, lambda c: c.update(attn_implementation="evil/kernel")),
                   [DECODER_CONFIG_FILE, "attn_implementation"]),
    "captioner_json_not_json": (lambda d: (d / CONFIG_FILE).write_text("{not json"), [CONFIG_FILE, "not JSON"]),
    "pickle_only": (lambda d: ((d / WEIGHTS_FILE).unlink(), (d / "pytorch_model.bin").write_bytes(b"\x80\x04junk")),
                    [WEIGHTS_FILE, "pytorch_model.bin", "never unpickles"]),
    "truncated_weights": (lambda d: (d / WEIGHTS_FILE).write_bytes((d / WEIGHTS_FILE).read_bytes()[:-1000]),
                          [WEIGHTS_FILE, "truncated"]),
    "weights_header_too_long": (lambda d: (d / WEIGHTS_FILE).write_bytes(b"\xff" * 8 + b"{}"), [WEIGHTS_FILE, "header"]),
    "weights_are_dev_zero": (lambda d: ((d / WEIGHTS_FILE).unlink(), os.symlink("/dev/zero", d / WEIGHTS_FILE)),
                             [WEIGHTS_FILE, "device", "/dev/zero"]),
    "weights_are_a_fifo": (lambda d: ((d / WEIGHTS_FILE).unlink(), os.mkfifo(d / WEIGHTS_FILE)), [WEIGHTS_FILE, "FIFO"]),
    "config_is_a_fifo": (lambda d: ((d / DECODER_CONFIG_FILE).unlink(), os.mkfifo(d / DECODER_CONFIG_FILE)),
                         [DECODER_CONFIG_FILE, "FIFO"]),
    "tokenizer_config_is_a_fifo": (lambda d: os.mkfifo(d / "special_tokens_map.json"),
                                   ["special_tokens_map.json", "FIFO"]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_directory_is_refused_before_anything_loads(copy_of: Callable[[], Path], case: str) -> None:
    if "fifo" in case and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    directory = copy_of()
    spoil, expected = HOSTILE[case]
    spoil(directory)
    problems = problems_within(directory)
    assert problems, case
    text = " ".join(problems)
    for words in expected:
        assert words in text, (case, text)
    assert len(text) < 2000  # no list of every model type transformers knows
    with pytest.raises(ModelDirectoryError) as error:  # the same check, before any tensor is allocated
        Captioner.load(directory)
    assert str(directory) in str(error.value)


def test_validate_refuses_a_hostile_directory(pm: PluginManager, copy_of: Callable[[], Path], tmp_path: Path) -> None:
    directory = edit(copy_of(), DECODER_CONFIG_FILE, lambda c: c.update(vocab_size=2_000_000_000))
    table = pl.DataFrame({"uid": ["u0"], "image": ["0.png"], "alt_text": ["a red circle"]})
    for step, params in (("realign", {"model": str(directory)}), ("caption_pairs", {"model": str(directory)}),
                         ("train_captioner", {"init": str(directory)})):
        with pytest.raises(SpecError, match="vocab_size") as error:
            run_step(step, table, {**params, "images": "path", "image_root": str(tmp_path)}, pm=pm)
        assert DECODER_CONFIG_FILE in str(error.value)


def test_a_refused_directory_is_never_hashed_for_the_fingerprint(copy_of: Callable[[], Path]) -> None:
    from curate_captioner.step import model_digest

    directory = copy_of()
    assert model_digest(str(directory)) is not None
    with open(directory / WEIGHTS_FILE, "r+b") as handle:  # a sparse file far larger than its header says
        handle.truncate(2**40)
    assert model_digest(str(directory)) is None
    assert any("truncated or corrupt" in p for p in captioner_problems(str(directory)))


def test_a_good_directory_and_the_world_captioner_pass(saved_captioner: Path) -> None:
    assert captioner_problems(str(saved_captioner)) == []
    assert captioner_problems("world") == []


def test_a_load_failure_past_the_checks_names_the_directory(copy_of: Callable[[], Path]) -> None:
    narrower = edit(copy_of(), CONFIG_FILE, lambda c: c["captioner"].update(mapper_width=16))  # shapes disagree
    assert captioner_problems(str(narrower)) == []
    with pytest.raises(ModelDirectoryError, match="cannot be loaded") as error:
        Captioner.load(narrower)
    assert str(narrower) in str(error.value) and "internal" not in str(error.value)
    broken_tokenizer = copy_of()
    (broken_tokenizer / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelDirectoryError, match=str(broken_tokenizer)):
        Captioner.load(broken_tokenizer)


def test_auto_map_is_never_honoured(copy_of: Callable[[], Path], tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    evil = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\nclass EvilConfig: pass\nclass EvilModel: pass\n"
    auto_map = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    known = edit(copy_of(), DECODER_CONFIG_FILE, lambda c: c.update(auto_map=auto_map))
    (known / "evil.py").write_text(evil)
    edit(known, "tokenizer_config.json", lambda c: c.update(auto_map={"AutoTokenizer": ["evil.EvilModel", None]}))
    loaded = Captioner.load(known)  # a known model type: built by transformers, the auto_map ignored
    assert type(loaded.decoder).__module__.startswith("transformers.")
    unknown = edit(copy_of(), DECODER_CONFIG_FILE, lambda c: c.update(auto_map=auto_map, model_type="evil"))
    (unknown / "evil.py").write_text(evil)
    assert any("model_type 'evil'" in p for p in captioner_problems(str(unknown)))
    with pytest.raises(ModelDirectoryError):
        Captioner.load(unknown)
    assert not marker.exists()


def test_a_hub_kernel_is_not_loaded_even_past_the_check(copy_of: Callable[[], Path]) -> None:
    directory = edit(copy_of(), DECODER_CONFIG_FILE, lambda c: c.update(attn_implementation="evil/kernel"))
    captioner = Captioner._build(directory)  # what load does after the check
    assert captioner.decoder.config._attn_implementation in ("eager", "sdpa")


OPT_1_3B = {"model_type": "opt", "vocab_size": 50272, "hidden_size": 2048, "num_hidden_layers": 24, "ffn_dim": 8192,
            "num_attention_heads": 32, "max_position_embeddings": 2048, "word_embed_proj_dim": 2048}
LLAMA_7B = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "num_hidden_layers": 32,
            "intermediate_size": 11008, "num_attention_heads": 32, "max_position_embeddings": 4096,
            "tie_word_embeddings": False}


@pytest.mark.parametrize("config,low,high", [(OPT_1_3B, 1.2e9, 2e9), (LLAMA_7B, 6.5e9, MAX_PARAMETERS)])
def test_real_decoders_fit_the_bounds(config: dict[str, Any], low: float, high: float) -> None:
    problems: list[str] = []
    counts = decoder_config_problems(Path(DECODER_CONFIG_FILE), config, None, problems)
    assert problems == []
    assert low <= counts["decoder parameters"] <= high


def test_a_decoder_past_the_parameter_limit_is_refused(copy_of: Callable[[], Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    directory = edit(copy_of(), DECODER_CONFIG_FILE, lambda c: c.update(
        hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, vocab_size=128256))  # Llama-70B's sizes
    assert any("about" in p and "parameters" in p for p in captioner_problems(str(directory)))
    monkeypatch.setenv(MAX_PARAMETERS_ENV, str(10**12))  # allowed: then the weights say they disagree
    assert any("decoder blocks" in p for p in captioner_problems(str(directory)))


def test_the_cli_refuses_a_hostile_directory_without_a_traceback(curate_cli: Callable[..., Any],
                                                                 copy_of: Callable[[], Path], tmp_path: Path) -> None:
    directory = copy_of()
    (directory / WEIGHTS_FILE).unlink()
    os.mkfifo(directory / WEIGHTS_FILE)
    picture = tmp_path / "picture.png"
    images(1)[0].save(picture)
    result = curate_cli("captioner", "caption", str(picture), "--model", str(directory), timeout=120)
    assert result.code == 2, result
    assert "FIFO" in result.stderr and "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert isinstance(ModelDirectoryError("x"), CurateError)
