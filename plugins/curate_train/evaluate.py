"""Zero-shot classification and image↔text retrieval on a world's clean eval split.

Zero-shot: one class per vocabulary word (``label_shape`` over the world's shapes, ``label_color``
over its colors). Two prompt sets, reported separately: ``simple`` (a few generic templates, "a {}",
"a {} shape") and ``vocabulary`` (the world's own phrase "a large {color} {shape}", averaged over
every value of the other attribute, as CLIP averages ImageNet templates). The headline
``zeroshot`` is the vocabulary set's mean over the two labels. Retrieval: each eval
image against the ``visual_description`` of every eval image (what is visible, no entity names),
R@1 and R@5 in both directions. The world's eval is one eval set among others: the general ones
(any imagefolder or table, the user's templates) are in ``curate_train/evalsets.py``, whose metric
functions compute these numbers too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curate.errors import UsageError

SIMPLE_TEMPLATES = {
    "label_shape": ["a {}", "a large {}", "a large {} on a background", "a picture of a {}"],
    "label_color": ["a {} shape", "a large {} shape", "something {}", "a large {} object on a background"],
}
VOCABULARY = {"label_shape": "shapes", "label_color": "colors"}


def prompt_sets(label: str, vocabulary: dict[str, Any]) -> dict[str, list[list[str]]]:
    """{set name: prompts per class} for one label."""
    classes = list(vocabulary[VOCABULARY[label]])
    if label == "label_shape":
        phrased = [[f"a large {color} {c}" for color in vocabulary["colors"]] for c in classes]
    else:
        phrased = [[f"a large {c} {shape}" for shape in vocabulary["shapes"]] for c in classes]
    return {"simple": [[t.format(c) for t in SIMPLE_TEMPLATES[label]] for c in classes], "vocabulary": phrased}


def encode_texts(model: Any, tokenizer: Any, texts: list[str], batch: int = 256):
    from curate_train.evalsets import encode_texts as encode

    return encode(model, tokenizer, texts, batch)


def encode_images(model: Any, preprocess: Any, paths: list[Path], batch: int = 128):
    import torch
    from PIL import Image

    out = []
    with torch.no_grad():
        for i in range(0, len(paths), batch):
            images = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths[i:i + batch]])
            out.append(torch.nn.functional.normalize(model.encode_image(images), dim=-1))
    return torch.cat(out)


def check_world(world_dir: Path) -> None:
    missing = [name for name in ("world.json", "eval.parquet") if not (world_dir / name).is_file()]
    if missing:
        raise UsageError(f"{world_dir} is not a world directory (no {' or '.join(missing)})",
                         "--world takes what `curate world generate` writes; for your own labelled images "
                         "or image-text pairs use --eval-set FILE.yaml or --images PATH")


def eval_zeroshot(checkpoint: Path | str | None, world_dir: Path, model_name: str = "tiny") -> dict[str, float]:
    """Accuracy per label (and their mean, ``zeroshot``) and retrieval R@1/R@5 on ``world_dir``'s
    eval split; ``checkpoint`` is a .pt of architecture ``model_name`` or a ``local-dir:`` model."""
    from curate_train.clip import load_clip

    check_world(world_dir)
    import torch

    torch.manual_seed(0)
    model, preprocess, tokenizer = load_clip(checkpoint, model_name)
    return eval_world(model, preprocess, tokenizer, world_dir)


def eval_world(model: Any, preprocess: Any, tokenizer: Any, world_dir: Path) -> dict[str, float]:
    import polars as pl

    from curate_train.evalsets import class_weights, retrieval_recall, topk_accuracy

    eval_table = pl.read_parquet(world_dir / "eval.parquet")
    vocabulary = json.loads((world_dir / "world.json").read_text())["vocabulary"]
    images = encode_images(model, preprocess, [world_dir / p for p in eval_table["image_path"]])
    results: dict[str, float] = {}
    for label in SIMPLE_TEMPLATES:
        classes = list(vocabulary[VOCABULARY[label]])
        truth = [classes.index(v) for v in eval_table[label]]
        for set_name, prompts in prompt_sets(label, vocabulary).items():
            key = f"acc_{label.removeprefix('label_')}" + ("" if set_name == "vocabulary" else "_simple")
            results[key] = topk_accuracy(images, class_weights(model, tokenizer, prompts), truth, (1,))[1]
    results["zeroshot"] = (results["acc_shape"] + results["acc_color"]) / 2
    results["zeroshot_simple"] = (results["acc_shape_simple"] + results["acc_color_simple"]) / 2
    texts = encode_texts(model, tokenizer, eval_table["visual_description"].to_list())
    results.update(retrieval_recall(images, texts, list(range(len(texts)))))
    results["n_eval"] = len(texts)
    return results
