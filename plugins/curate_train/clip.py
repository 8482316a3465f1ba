"""Train a CLIP from scratch with the real client, ``open_clip_train.main``, on WebDataset shards
written by the ``webdataset`` sink.

Models: ``world`` is the world CLIP's open_clip config from curate_clip (``world-clip-tiny``, 64 px,
4+3 layers of width 128), trained from scratch; ``tiny`` is this package's ``curate_train_tiny.json``
(32 px, 2+2 layers of width 64), for CPUs shared by many (a step of the world config took ~20 s on
the 2 loaded cores this was written on)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import UsageError

TINY_CONFIG = Path(__file__).with_name("curate_train_tiny.json")
TINY_MODEL = "curate-train-tiny"
LOCAL_DIR = "local-dir:"
CONFIG_FILE = "open_clip_config.json"  # open_clip's local-dir: convention (open_clip/factory.py)
WEIGHTS_FILE = "open_clip_model.safetensors"
# open_clip_train.params' --precision choices (tests/train check them against its parser)
CONFIG_HINT = (f"a model to train or evaluate is an open_clip config of open_clip's own towers (like {TINY_CONFIG.name}); "
               "curate builds no Hugging Face tokenizer or text model from a config")
PRECISIONS = ("amp", "amp_bf16", "amp_bfloat16", "bf16", "fp16", "pure_bf16", "pure_fp16", "fp32")


@dataclass(frozen=True)
class ModelChoice:
    """What ``--model`` named: ``name`` is what open_clip(_train) is given; ``config`` (tiny, world,
    a config file) is registered under ``name`` first; a ``local-dir:`` name needs nothing."""

    name: str
    config: dict[str, Any] | None = None


def model_config(model: str = "tiny") -> tuple[str, Path]:
    """(open_clip model name, config file) for ``tiny`` or ``world`` (curate_clip's config)."""
    if model == "world":
        from curate_clip.api import CONFIG_DIR, WORLD_MODEL

        return WORLD_MODEL, CONFIG_DIR / f"{WORLD_MODEL}.json"
    if model != "tiny":
        raise UsageError(f"model is 'tiny' or 'world', got {model!r}")
    return TINY_MODEL, TINY_CONFIG


def local_dir(path: Path) -> str:
    return f"{LOCAL_DIR}{path.expanduser().resolve()}"


def resolve_model(model: str) -> ModelChoice:
    """``tiny``, ``world``, ``local-dir:DIR`` (or a DIR holding open_clip_config.json), or a JSON
    config file (an open_clip model config, or ``{"model_cfg": ..., "preprocess_cfg": ...}``).

    A folder's or a file's config may come from anyone, so it is checked as clip_score checks its
    models (curate_clip's ``config_problems``) before open_clip sees it: a ``hf_tokenizer_name``
    with ``tokenizer_kwargs: {trust_remote_code: true}`` made open_clip(_train) import the Python
    file the folder's tokenizer_config.json names, and sizes no CLIP has would allocate at will."""
    from curate_clip.api import architecture_config, config_problems

    if model in ("tiny", "world"):
        name, config = model_config(model)
        return ModelChoice(name, json.loads(config.read_text()))
    path = Path(model.removeprefix(LOCAL_DIR)).expanduser()
    if model.startswith(LOCAL_DIR) or path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise UsageError(f"model {model!r}: no {CONFIG_FILE} in {path}",
                             "a local-dir: model is a folder with open_clip_config.json "
                             '({"model_cfg": ..., "preprocess_cfg": ...}) and open_clip_model.safetensors, '
                             "as `curate train clip` writes")
        problem = architecture_config(local_dir(path))[1]
        if problem:
            raise UsageError(problem, CONFIG_HINT)
        return ModelChoice(local_dir(path))
    if path.suffix == ".json":
        if not path.is_file():
            raise UsageError(f"model config {path} does not exist")
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UsageError(f"model config {path} is not JSON: {exc}") from None
        config = config.get("model_cfg", config)
        if not isinstance(config, dict) or "vision_cfg" not in config or "text_cfg" not in config:
            raise UsageError(f"model config {path} has no vision_cfg and text_cfg",
                             f"an open_clip model config, like {TINY_CONFIG}")
        problems = config_problems(str(path), config, local=True)
        if problems:
            raise UsageError("; ".join(problems), CONFIG_HINT)
        return ModelChoice(f"curate-config-{path.stem}", config)
    raise UsageError(f"unknown model {model!r}",
                     "use tiny, world, local-dir:<folder written by curate train clip>, or an open_clip "
                     "model config .json file")


def register_model(name: str, config: Path | dict[str, Any]) -> None:
    """Make ``name`` known to open_clip (it looks configs up by file stem in a registry)."""
    import open_clip
    from open_clip.factory import _MODEL_CONFIGS

    if name not in _MODEL_CONFIGS:
        _MODEL_CONFIGS[name] = json.loads(config.read_text()) if isinstance(config, Path) else config
    assert name in open_clip.list_models()


def prepare(model: str) -> str:
    """The name to give open_clip(_train) for ``model``, registered if it is a config."""
    choice = resolve_model(model)
    if choice.config is not None:
        register_model(choice.name, choice.config)
    return choice.name


def epochs_for_samples(samples: int, pool: int) -> int:
    """Passes over a ``pool``-sample export so the model sees at least ``samples`` samples:
    ceil(samples / pool) (whole passes; the model sees epochs × pool samples, < samples + pool)."""
    if samples <= 0 or pool <= 0:
        raise UsageError(f"--samples must be positive, got {samples}")
    return math.ceil(samples / pool)


def shard_pattern(shards: Path) -> tuple[str, int]:
    """open_clip's brace pattern over a webdataset sink's tars, and the sample count."""
    sizes = json.loads((shards / "sizes.json").read_text())
    names = sorted(sizes)
    if not names:  # what an export of an empty table writes
        raise UsageError(f"{shards} holds no shards: the export it comes from had no rows to write",
                         "check the run's funnel (curate inspect RUN_DIR): every row was dropped before the export")
    return str(shards / f"{{{names[0][:-4]}..{names[-1][:-4]}}}.tar"), int(sum(sizes.values()))


def train_clip(shards: Path, out: Path, *, name: str = "clip", epochs: int = 1, batch_size: int = 64,
               lr: float = 2e-3, warmup: int = 20, seed: int = 0, workers: int = 1, model: str = "tiny",
               threads: int | None = 1, precision: str = "fp32", num_samples: int | None = None,
               seeded_order: bool = True) -> Path:
    """Train with ``open_clip_train.main``; returns the final checkpoint, and writes beside it a
    ``local-dir:`` model folder (:func:`model_dir`). ``epochs`` passes over the shards (a sink with
    ``repeats: E`` already holds E unrolled epochs: pass ``epochs=1``). A ``local-dir:`` model that
    holds weights starts from them (fine-tuning); the others start from scratch. ``num_samples``
    cuts each epoch at that many samples (whole batches; the shards must hold at least as many):
    an exact budget in samples seen, whatever the export's size. ``seeded_order``: the sample
    order is a function of ``seed`` too (:func:`seeded_sample_shuffle`); on by default, so that
    ``curate train clip --seed 0`` twice trains one model (webdataset's own shuffle is seeded from
    the clock and the pid: a test's tiny model scored 0.5 on one run and 1.0 on the others)."""
    if precision not in PRECISIONS:
        raise UsageError(f"precision {precision!r} is not one open_clip_train accepts",
                         f"choose one of {', '.join(PRECISIONS)}")
    from curate_train.shardcheck import shards_problems

    resolve_model(model)  # a model that is refused is named before the shards are read
    if (out / name).exists():  # open_clip_train would print an error and return, leaving the old checkpoint
        raise UsageError(f"{out / name} already exists: open_clip_train starts a run only in a new folder, and the "
                         "checkpoint there is an earlier run's", f"give another --out or --name, or delete {out / name}")
    pattern, samples = shard_pattern(shards)
    if num_samples is not None:
        if num_samples > samples:
            raise UsageError(f"num_samples {num_samples} is more than the {samples} samples in {shards}")
        samples = num_samples
    if samples < batch_size:  # open_clip_train drops a partial batch, then reads the shards again, forever
        raise UsageError(f"{shards} holds {samples} samples to train on, fewer than one batch of {batch_size}",
                         "lower the batch size, or export more samples")
    sizes = json.loads((shards / "sizes.json").read_text())
    unreadable = shards_problems(shards, sorted(sizes), sizes)
    if unreadable:  # it skips what it cannot read, and with nothing left reads the shards again, forever
        more = f" (and {len(unreadable) - 3} more)" if len(unreadable) > 3 else ""
        raise UsageError("; ".join(unreadable[:3]) + more,
                         "SHARDS is what the webdataset sink writes: export them again")
    import open_clip_train.main
    import torch

    if threads:  # on a loaded shared CPU, 2 threads ran a step ~7x slower than 1
        torch.set_num_threads(threads)
    model_name = prepare(model)
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "--train-data", pattern, "--train-num-samples", str(samples), "--dataset-type", "webdataset",
        "--model", model_name, "--epochs", str(epochs), "--batch-size", str(batch_size), "--lr", str(lr),
        "--wd", "0.1", "--warmup", str(warmup), "--workers", str(workers), "--seed", str(seed),
        "--precision", precision, "--logs", str(out), "--name", name, "--save-frequency", str(epochs),
        "--zeroshot-frequency", "0", "--val-frequency", "0", "--report-to", "", "--log-every-n-steps", "20",
    ]
    with own_logging():
        if seeded_order:
            with seeded_sample_shuffle(seed):
                open_clip_train.main.main(args)
        else:
            open_clip_train.main.main(args)
    checkpoint = out / name / "checkpoints" / f"epoch_{epochs}.pt"
    if not checkpoint.is_file():
        raise RuntimeError(f"open_clip_train finished without {checkpoint}")
    export_local_dir(checkpoint, model_name, model_dir(checkpoint))
    return checkpoint


@contextmanager
def own_logging() -> Iterator[None]:
    """open_clip_train's ``setup_logging`` adds a console and an ``out.log`` handler to the root
    logger and never removes them: a second run in one process (the next variant) also wrote its
    lines into the first run's log, twice to the console, and kept the file open. It also sets every
    logger that exists to INFO, so torch's dynamo printed its compilation metrics at exit. Inside
    this block the root logger's handlers and every logger's level are put back as they were, the
    added handlers closed."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logger.level for name, logger in logging.root.manager.loggerDict.items()
              if isinstance(logger, logging.Logger)}
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
        for name, logger in logging.root.manager.loggerDict.items():
            if isinstance(logger, logging.Logger):
                logger.setLevel(levels.get(name, logging.NOTSET))


@contextmanager
def no_random_init_warning() -> Iterator[None]:
    """open_clip warns "No pretrained weights loaded … initialized randomly" when it builds a model
    whose weights the caller loads next: said after a training run, it reads as if the trained
    weights were thrown away. Only that warning is held back."""
    import logging

    class Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "No pretrained weights loaded" not in record.getMessage()

    root, drop = logging.getLogger(), Drop()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


@contextmanager
def seeded_sample_shuffle(seed: int) -> Iterator[None]:
    """open_clip_train shuffles shards with a seeded ``detshuffle2`` but samples with webdataset's
    ``shuffle``, whose generator is seeded from the clock and the pid: two runs with one ``--seed``
    see the samples in different orders. Inside this block ``webdataset.shuffle`` is webdataset's
    own ``detshuffle`` (same buffer sizes) seeded with ``seed``, so the seed fixes the order too."""
    import webdataset

    original = webdataset.shuffle

    def shuffle(bufsize: int = 1000, initial: int = 100, **_: Any) -> Any:
        return webdataset.detshuffle(bufsize=bufsize, initial=initial, seed=seed)

    webdataset.shuffle = shuffle
    try:
        yield
    finally:
        webdataset.shuffle = original


def model_dir(checkpoint: Path) -> Path:
    """Where :func:`train_clip` writes the ``local-dir:`` folder of ``RUN/NAME/checkpoints/epoch_N.pt``:
    ``RUN/NAME/model``."""
    return checkpoint.parent.parent / "model"


def export_local_dir(checkpoint: Path, model_name: str, target: Path) -> Path:
    """An open_clip_train checkpoint → open_clip's ``local-dir:`` folder: ``open_clip_config.json``
    (model_cfg + preprocess_cfg) and the float32 weights as ``open_clip_model.safetensors``."""
    import open_clip
    import torch
    from open_clip.factory import _MODEL_CONFIGS
    from safetensors.torch import save_file

    if model_name.startswith(LOCAL_DIR):
        model_cfg = json.loads((Path(model_name.removeprefix(LOCAL_DIR)) / CONFIG_FILE).read_text())["model_cfg"]
    else:
        model_cfg = _MODEL_CONFIGS[model_name]
    with no_random_init_warning():  # its weights are loaded next
        network = open_clip.create_model(model_name, device="cpu")
    state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)["state_dict"]
    network.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
    target.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": model_cfg, "preprocess_cfg": open_clip.get_model_preprocess_cfg(network)}
    (target / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    tensors = {k: v.detach().contiguous() for k, v in network.state_dict().items()}
    save_file(tensors, str(target / WEIGHTS_FILE))
    return target


def load_clip(checkpoint: Path | str | None, model: str = "tiny"):  # -> (model, preprocess, tokenizer)
    """A trained CLIP: an open_clip_train ``checkpoint`` (.pt) of architecture ``model`` (tiny, world,
    a config .json or a local-dir: folder, whose own weights the .pt then replaces), or a
    ``local-dir:`` model alone — ``checkpoint`` (or, without one, ``model``) is ``local-dir:DIR`` or DIR."""
    import open_clip

    def is_folder(candidate: Path | str | None) -> bool:
        text = str(candidate) if candidate is not None else ""
        return text.startswith(LOCAL_DIR) or (bool(text) and Path(text).is_dir())

    if is_folder(checkpoint) or (checkpoint is None and is_folder(model)):
        name = resolve_model(str(checkpoint if checkpoint is not None else model)).name
        network, _, preprocess = open_clip.create_model_and_transforms(name, weights_only=True)
        network.eval()
        return network, preprocess, open_clip.get_tokenizer(name)
    if checkpoint is None:
        raise UsageError("no weights to evaluate", "give a checkpoint (.pt) or --model local-dir:<folder>")
    path = Path(checkpoint)
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    model_name = prepare(model)
    if model_name.startswith(LOCAL_DIR):  # open_clip ignores `pretrained` for local-dir: names
        import torch

        network, _, preprocess = open_clip.create_model_and_transforms(model_name, weights_only=True)
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        network.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
    else:
        network, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(path),
                                                                       weights_only=True)
    network.eval()
    return network, preprocess, open_clip.get_tokenizer(model_name)
