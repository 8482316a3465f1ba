"""A model to train or evaluate named by path (a ``local-dir:`` folder, an open_clip config .json)
may come from someone else: its config is checked as clip_score checks its models, before open_clip
or open_clip_train builds anything from it (curate_train.clip.resolve_model)."""

from __future__ import annotations

import json

import pytest

from tests.clip.test_model_files import malicious_folder
from tests.train.test_evalsets import cli, solid


def hostile_config(tmp_path, marker):
    """A config .json whose text tower's tokenizer is the malicious folder's, with its code trusted."""
    from curate_train.clip import TINY_CONFIG

    folder = malicious_folder(tmp_path / "evil", None, marker)
    config = json.loads(TINY_CONFIG.read_text())
    config["text_cfg"].update(hf_tokenizer_name=str(folder), tokenizer_kwargs={"trust_remote_code": True})
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(config))
    return path


@pytest.mark.filterwarnings("ignore")  # open_clip warns of random weights where a fix is missing
def test_eval_refuses_a_folder_whose_tokenizer_would_run_its_code_and_nothing_runs(tmp_path, capsys):
    marker = tmp_path / "ran"
    folder = malicious_folder(tmp_path / "evil", None, marker)
    solid(tmp_path / "images" / "red" / "0.png", "red")
    code, out, err = cli(["train", "eval", "--model", f"local-dir:{folder}", "--images", tmp_path / "images"], capsys)
    assert code == 2, (out, err)
    assert "trust_remote_code" in err and "hf_tokenizer_name" in err and "internal error" not in err
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore")
def test_train_clip_refuses_a_config_file_that_builds_a_hugging_face_tokenizer(tmp_path, capsys):
    marker = tmp_path / "ran"
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "sizes.json").write_text('{"00000.tar": 10}')
    code, out, err = cli(["train", "clip", shards, "--out", tmp_path / "out", "--model", hostile_config(tmp_path, marker)],
                         capsys)
    assert code == 2, (out, err)
    assert "mine.json" in err and "tokenizer_kwargs" in err and "internal error" not in err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_config_file_beyond_any_clips_size_is_refused_naming_the_key(tmp_path):
    from curate_train.clip import TINY_CONFIG, resolve_model

    from curate.errors import UsageError

    config = json.loads(TINY_CONFIG.read_text())
    config["text_cfg"]["context_length"] = 10**6  # the causal mask alone: 4 TB
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(config))
    with pytest.raises(UsageError, match="text_cfg.context_length is 1,000,000 tokens"):
        resolve_model(str(path))
