"""Training: loss goes down, checkpoints resume to the same weights as an uninterrupted run, the
CLI trains both stages from a table, and the train_captioner step runs in a spec."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import torch
from curate_captioner.model import Captioner
from curate_captioner.train import CHECKPOINT_DIR, LOG_FILE, TrainConfig, train

from tests.captioner.conftest import TOWER, images
from tests.core.conftest import curate_main  # noqa: F401


@pytest.fixture
def table(tmp_path: Path) -> pl.DataFrame:
    paths = []
    for index, image in enumerate(images(6)):
        path = tmp_path / f"img{index}.png"
        image.save(path)
        paths.append(str(path))
    return pl.DataFrame({
        "image": paths,
        "alt_text": ["a red circle", "two blue squares", "IMG_0012.jpg", "a star", "", "click here"],
        "caption": ["A large red circle.", "Two blue squares.", "A white star.", "A star.", "A circle.", "A square."],
        "group": [0, 0, 1, 1, 2, 2],
    })


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("encoder", [{}, {"train_encoder": True, "encoder_lr": 3e-3}], ids=["frozen", "trained"])
def test_resume_matches_an_uninterrupted_run(make_captioner: Callable[..., Any], table: pl.DataFrame, tmp_path: Path,
                                             encoder: dict[str, Any]) -> None:
    config = TrainConfig(stage=2, steps=4, batch_size=3, warmup=1, log_every=1, checkpoint_every=2, device="cpu",
                         **encoder)
    train(make_captioner(seed=1), table, config, tmp_path / "straight", log=lambda _: None)

    def stop_at_step_3(line: str) -> None:
        if line.startswith("{") and json.loads(line)["step"] == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(make_captioner(seed=1), table, config, tmp_path / "resumed", log=stop_at_step_3)
    assert (tmp_path / "resumed" / CHECKPOINT_DIR / "trainer_state.pt").exists()
    lines: list[str] = []
    train(make_captioner(seed=99), table, config, tmp_path / "resumed", log=lines.append)
    assert any("resuming stage 2 from step 2" in line for line in lines)
    straight, resumed = Captioner.load(tmp_path / "straight"), Captioner.load(tmp_path / "resumed")
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    assert not (tmp_path / "resumed" / CHECKPOINT_DIR).exists()
    logged = [json.loads(line) for line in (tmp_path / "straight" / LOG_FILE).read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3, 4] and all(r["loss"] > 0 for r in logged)


def test_loss_goes_down(make_captioner: Callable[..., Any], table: pl.DataFrame, tmp_path: Path) -> None:
    config = TrainConfig(stage=2, steps=40, batch_size=6, warmup=3, lr=3e-3, log_every=10, device="cpu")
    train(make_captioner(seed=2), table, config, tmp_path / "model", log=lambda _: None)
    logged = [json.loads(line)["loss"] for line in (tmp_path / "model" / LOG_FILE).read_text().splitlines()]
    assert logged[-1] < 0.7 * logged[0]


@pytest.mark.slow
def test_cli_trains_both_stages(curate_main: Callable[..., Any], table: pl.DataFrame, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Both stages in this process; the command line a stage records is its process's argv, here
    the one ``curate captioner train --stage 2 ...`` would have."""
    table.write_parquet(tmp_path / "train.parquet")
    (tmp_path / "tower.json").write_text(json.dumps(TOWER))
    common = ["--table", str(tmp_path / "train.parquet"), "--steps", "2", "--batch-size", "3", "--log-every", "1",
              "--device", "cpu", "--threads", "1", "--feature-cache", str(tmp_path / "features")]
    first = curate_main("captioner", "train", "--stage", "1", "--out", str(tmp_path / "s1"),
                        "--group-column", "group", "--encoder", str(tmp_path / "tower.json"),
                        "--decoder", "tiny-gpt2", "--decoder-hidden", "32", "--decoder-layers", "1",
                        "--vocab-size", "300", "--mapper-width", "32", "--prefix-length", "4", *common)
    assert first.code == 0, first
    args = ["captioner", "train", "--stage", "2", "--out", str(tmp_path / "s2"),
            "--init", str(tmp_path / "s1"), *common]
    monkeypatch.setattr("sys.argv", ["curate", *args])
    second = curate_main(*args)
    assert second.code == 0, second
    stages = Captioner.load(tmp_path / "s2").training_facts["stages"]
    assert [s["stage"] for s in stages] == [1, 2]
    assert stages[1]["command"].startswith("curate captioner train --stage 2")
    assert len(list((tmp_path / "features").glob("features-*.pt"))) == 1  # stage 2 reused stage 1's features


def test_cli_refuses_a_hub_decoder(curate_main: Callable[..., Any], table: pl.DataFrame,
                                   tmp_path: Path) -> None:
    table.write_parquet(tmp_path / "train.parquet")
    (tmp_path / "tower.json").write_text(json.dumps(TOWER))
    result = curate_main("captioner", "train", "--stage", "1", "--out", str(tmp_path / "s1"), "--table",
                         str(tmp_path / "train.parquet"), "--encoder", str(tmp_path / "tower.json"),
                         "--decoder", "facebook/opt-1.3b", "--steps", "1")
    assert result.code != 0 and "never downloads" in result.stderr and "Traceback" not in result.stderr


def test_a_trained_encoder_changes_and_is_saved(make_captioner: Callable[..., Any], table: pl.DataFrame,
                                                tmp_path: Path) -> None:
    start = make_captioner(seed=3)
    before = {k: v.clone() for k, v in start.encoder.state_dict().items()}
    frozen = TrainConfig(stage=2, steps=3, batch_size=3, warmup=1, device="cpu")
    train(make_captioner(seed=3), table, frozen, tmp_path / "frozen", log=lambda _: None)
    assert all(torch.equal(before[k], v) for k, v in Captioner.load(tmp_path / "frozen").encoder.state_dict().items())

    trained = frozen.model_copy(update={"train_encoder": True, "encoder_lr": 1e-2})
    train(start, table, trained, tmp_path / "trained", log=lambda _: None)
    loaded = Captioner.load(tmp_path / "trained")
    assert any(not torch.equal(before[k], v) for k, v in loaded.encoder.state_dict().items())
    assert not any(p.requires_grad for p in loaded.encoder.parameters())
    assert loaded.training_facts["stages"][-1]["config"]["train_encoder"] is True



class _WritesMarker:
    """A pickle that, when unpickled, creates a file: what a planted trainer_state.pt could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def test_a_planted_pickle_in_the_checkpoint_is_refused_not_run(curate_main: Callable[..., Any],
                                                               make_captioner: Callable[..., Any],
                                                               table: pl.DataFrame, tmp_path: Path) -> None:
    table.write_parquet(tmp_path / "train.parquet")
    (tmp_path / "tower.json").write_text(json.dumps(TOWER))
    checkpoint = tmp_path / "out" / CHECKPOINT_DIR
    make_captioner(seed=1).save(checkpoint)
    marker = tmp_path / "pwned"
    torch.save({"step": 1, "optimizer": {}, "payload": _WritesMarker(marker)}, checkpoint / "trainer_state.pt")
    result = curate_main("captioner", "train", "--stage", "2", "--out", str(tmp_path / "out"), "--table",
                         str(tmp_path / "train.parquet"), "--init", str(checkpoint), "--steps", "2",
                         "--batch-size", "3", "--device", "cpu", "--threads", "1")
    assert result.code == 2, result
    assert not marker.exists()
    assert "cannot resume from" in result.stderr and "trainer_state.pt" in result.stderr
    assert "weights_only=False" not in result.stderr and "Traceback" not in result.stderr


def test_cli_refuses_a_decoder_folder_without_tokenizer(curate_main: Callable[..., Any],
                                                        make_captioner: Callable[..., Any],
                                                        table: pl.DataFrame, tmp_path: Path) -> None:
    table.write_parquet(tmp_path / "train.parquet")
    (tmp_path / "tower.json").write_text(json.dumps(TOWER))
    make_captioner("gpt2").decoder.save_pretrained(tmp_path / "lm")
    result = curate_main("captioner", "train", "--stage", "1", "--out", str(tmp_path / "s1"), "--table",
                         str(tmp_path / "train.parquet"), "--encoder", str(tmp_path / "tower.json"),
                         "--decoder", str(tmp_path / "lm"), "--steps", "1")
    assert result.code == 2, result
    assert "has no tokenizer files" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s1" / "tokenizer.json").exists()


@pytest.mark.parametrize(("steps", "warmup", "lr", "ratio"), [(1000, 100, 3e-4, 0.1), (300, 0, 1e-3, 0.0)])
def test_schedule_is_transformers_cosine_with_min_lr_except_the_warmup(steps: int, warmup: int, lr: float,
                                                                        ratio: float) -> None:
    """Why learning_rate stays ours: transformers' warmup starts at 0, ours at lr / warmup."""
    from curate_captioner.train import learning_rate

    optimization = pytest.importorskip("transformers.optimization")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    schedule = optimization.get_cosine_with_min_lr_schedule_with_warmup(optimizer, warmup, steps, min_lr_rate=ratio)
    theirs = [lr * schedule.lr_lambdas[0](step) for step in range(steps)]
    ours = [learning_rate(step, TrainConfig(steps=steps, warmup=warmup, lr=lr, min_lr_ratio=ratio))
            for step in range(steps)]
    assert ours[warmup:] == pytest.approx(theirs[warmup:], rel=1e-12, abs=0)
    assert all(ours[s] == lr * (s + 1) / warmup != theirs[s] for s in range(warmup))


def test_a_train_captioner_step_beyond_its_bounds_fails_validation_naming_each_key(workdir, curate_cli):
    """A spec from someone else: 10¹² steps, a batch of 10⁹ and an infinite learning rate passed
    `curate validate --untrusted` and trained without end."""
    pl.DataFrame({"url": ["http://example.org/a.png"], "alt_text": ["a cat"],
                  "image": [{"shard": "images", "key": "a"}]}).write_parquet(workdir / "in.parquet")
    (workdir / "spec.yaml").write_text(
        "name: cap\nsource: {format: parquet, path: in.parquet}\nsteps:\n"
        "  - step: train_captioner\n    params: {init: world, stage: 1, steps: 1000000000000, batch_size: 1000000000, "
        "lr: .inf}\n")
    result = curate_cli("validate", "--untrusted", "spec.yaml")
    assert result.code == 2, result
    for expected in ("steps[0].params.steps: must be ≤ 10000000, got 1000000000000",
                     "steps[0].params.batch_size: must be ≤ 65536, got 1000000000",
                     "steps[0].params.lr: Input should be a finite number"):
        assert expected in result.stderr, (expected, result)


def test_captioner_train_options_beyond_their_bounds_exit_2_before_loading_anything(tmp_path, curate_cli):
    pl.DataFrame({"image": ["absent.png"], "alt_text": ["a cat"]}).write_parquet(tmp_path / "t.parquet")
    result = curate_cli("captioner", "train", "--stage", "1", "--out", str(tmp_path / "out"), "--table",
                        str(tmp_path / "t.parquet"), "--steps", "100000000000", "--lr", "nan")
    assert result.code == 2, result
    assert "--steps: must be ≤ 10000000, got 100000000000; --lr: Input should be a finite number" in result.stderr
    assert "internal error" not in result.stderr and not (tmp_path / "out").exists()
