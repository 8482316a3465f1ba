"""A captioner is one directory: saving and loading round-trips every weight and the outputs, for
every decoder family, and a hub id is refused without touching a network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from curate_captioner.config import CONFIG_FILE, WEIGHTS_FILE
from curate_captioner.errors import CaptionerError
from curate_captioner.model import Captioner
from tests.captioner.conftest import images


@pytest.mark.parametrize("kind,features", [("llama", "pooled"), ("gpt2", "pooled+tokens"), ("opt", "pooled")])
def test_save_load_round_trip(make_captioner: Callable[..., Any], tmp_path: Path, kind: str, features: str) -> None:
    captioner = make_captioner(kind, features)
    captioner.save(tmp_path / "model")
    loaded = Captioner.load(tmp_path / "model")
    assert set(captioner.state_dict()) == set(loaded.state_dict())
    for name, tensor in captioner.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert loaded.config == captioner.config and loaded.encoder_config == captioner.encoder_config
    assert loaded.tokenizer.get_vocab() == captioner.tokenizer.get_vocab()
    assert loaded.name.startswith(f"test-{kind}@")
    pictures = images(2)
    batch = captioner.batch(["a red circle", ""], ["A large red circle.", "Two stars."])
    with torch.no_grad():
        assert torch.equal(captioner.loss(*captioner.image_features(pictures), batch),
                           loaded.loss(*loaded.image_features(pictures), batch))


def test_saved_directory_is_safetensors_and_configs(saved_captioner: Path) -> None:
    names = {p.name for p in saved_captioner.iterdir()}
    assert {CONFIG_FILE, WEIGHTS_FILE, "decoder_config.json", "tokenizer.json"} <= names
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in names)


def test_hub_id_is_refused_with_a_clear_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CaptionerError, match="not a local directory") as error:
        Captioner.load("facebook/opt-1.3b")
    assert "never downloads" in str(error.value)


def test_directory_without_captioner_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CaptionerError, match="not a captioner"):
        Captioner.load(tmp_path)


def test_pretrained_decoder_must_be_local(tmp_path: Path) -> None:
    from curate_captioner.model import load_pretrained_decoder

    with pytest.raises(CaptionerError, match="never downloads"):
        load_pretrained_decoder(tmp_path / "facebook" / "opt-1.3b")


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_a_decoder_directory_without_its_tokenizer_is_refused(make_captioner: Callable[..., Any], tmp_path: Path,
                                                             kind: str) -> None:
    """transformers builds a GPT-2 tokenizer of its special tokens alone from such a folder, and
    the captioner trained on that empty vocabulary; now the folder is refused, saying what is missing."""
    from curate_captioner.errors import RefusedFile
    from curate_captioner.model import load_pretrained_decoder

    make_captioner(kind).decoder.save_pretrained(tmp_path / "lm")
    with pytest.raises(RefusedFile, match="has no tokenizer files") as refused:
        load_pretrained_decoder(tmp_path / "lm")
    assert refused.value.exit_code == 2 and "tokenizer.save_pretrained" in str(refused.value)


def test_a_tokenizer_with_an_empty_vocabulary_is_refused(make_captioner: Callable[..., Any], tmp_path: Path) -> None:
    from curate_captioner.errors import RefusedFile
    from curate_captioner.model import load_pretrained_decoder

    make_captioner("gpt2").decoder.save_pretrained(tmp_path / "lm")
    (tmp_path / "lm" / "vocab.json").write_text("{}")
    (tmp_path / "lm" / "merges.txt").write_text("#version: 0.2\n")
    with pytest.raises(RefusedFile, match="empty vocabulary|cannot be read"):
        load_pretrained_decoder(tmp_path / "lm")


def test_new_captioner_from_a_local_pretrained_decoder(make_captioner: Callable[..., Any], tmp_path: Path) -> None:
    """The OPT/Llama path: a pretrained LM directory and its own tokenizer gain the caption token."""
    from curate_captioner.model import load_pretrained_decoder

    donor = make_captioner("opt")
    donor.decoder.save_pretrained(tmp_path / "lm")
    donor.tokenizer.save_pretrained(tmp_path / "lm")
    decoder, tokenizer = load_pretrained_decoder(tmp_path / "lm")
    captioner = Captioner.create(donor.encoder, donor.encoder_config, decoder, tokenizer, donor.config)
    assert captioner.caption_id == donor.caption_id
    captioner.save(tmp_path / "captioner")
    assert Captioner.load(tmp_path / "captioner").decoder.config.model_type == "opt"
