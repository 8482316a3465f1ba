"""Eval sets as data: zero-shot classification on any labelled image table and image↔text retrieval
on any paired table, with the user's prompt templates.

An eval set (``curate train eval --eval-set FILE.yaml``, or the same fields as CLI options)::

    name: pets                      # optional; default: the path's stem
    format: imagefolder             # imagefolder: PATH/<class>/<image>; table: a .parquet/.csv file
    path: data/pets                 # relative to the YAML file's folder
    task: auto                      # classification | retrieval | auto (what the columns allow)
    path_column: path               # table: image paths, relative to the table's folder
    label_column: label             # table: the class of each image
    text_column: text               # table: the paired text (retrieval)
    templates: ["a photo of a {}."] # prompts per class, averaged (one "{}" each)
    classnames: {n0144: tench}      # optional: label → the name put in the templates
    groups: {head: [circle], tail: [heart, cross]}  # optional: accuracy also per group of classes

Metrics: classification ``acc1``/``acc5`` (top-k accuracy, class embeddings = mean of the
normalized template embeddings, renormalized, as CLIP does); retrieval ``i2t_r1/r5`` (an image is
right when any of its texts is in its top k; rows with the same image path are one image) and
``t2i_r1/r5`` (a text is right when its image is in its top k). With ``groups``, also
``acc1_<group>`` (and ``acc5_<group>``): the accuracy over the images whose true class is in the
group, still classified among *all* classes (a head/tail split of one zero-shot task). Rankings sort by similarity,
ties broken by row order (the first of equal scores ranks first, as ``argmax`` does).

An eval set of an experiment from someone else (``curate experiment validate|run --untrusted``) is
read with ``untrusted``: every image it lists must be a regular file inside the working directory,
links resolved (:mod:`curate_train.untrusted`), checked when its rows are read, before any image is
opened, and each image is then opened at that real path without waiting on a pipe.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from curate.errors import UsageError
from curate.suggest import did_you_mean
from curate.params import Params

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
DEFAULT_TEMPLATES = ("a photo of a {}.",)


class EvalSet(Params):
    name: str | None = None
    format: Literal["imagefolder", "table"]
    path: str
    task: Literal["auto", "classification", "retrieval"] = "auto"
    path_column: str = "path"
    label_column: str = "label"
    text_column: str = "text"
    templates: list[str] = Field(default_factory=lambda: list(DEFAULT_TEMPLATES), min_length=1)
    classnames: dict[str, str] | None = None
    groups: dict[str, list[str]] | None = Field(
        None, description="group name → classes (labels): accuracy is also reported per group")

    @field_validator("groups")
    @classmethod
    def _group_names(cls, groups: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        for name, classes in (groups or {}).items():
            if not name.replace("_", "").isalnum():
                raise ValueError(f"group name {name!r} must be letters, digits and '_' (it names a metric)")
            if not classes:
                raise ValueError(f"group '{name}' lists no classes")
        return groups

    @field_validator("templates")
    @classmethod
    def _one_slot(cls, templates: list[str]) -> list[str]:
        for template in templates:
            if template.count("{}") != 1:
                raise ValueError(f"template {template!r} must hold exactly one '{{}}' for the class name")
        return templates

    @property
    def label(self) -> str:
        return self.name or Path(self.path).stem


class Rows:
    """An eval set read from disk: image paths, and labels and/or texts per row; ``within``, for an
    untrusted eval set, the real folders its images were checked to lie in (read_rows)."""

    def __init__(self, paths: list[Path], labels: list[str] | None, texts: list[str] | None, where: str,
                 within: tuple[Path, ...] | None = None):
        self.paths, self.labels, self.texts, self.where = paths, labels, texts, where
        self.within = within


def load_eval_sets(file: Path) -> list[EvalSet]:
    """One set (a mapping) or several (a list) from a YAML file; paths become relative to its folder."""
    if not file.is_file():
        raise UsageError(f"eval-set file {file} does not exist")
    from curate.errors import SpecError
    from curate.spec import parse_yaml, read_spec_file

    try:
        data, _ = parse_yaml(read_spec_file(file), str(file))  # bounded: a stranger's file
    except SpecError as exc:  # not YAML, refused (curate.yaml_limits) or a key given twice
        first = exc.problems[0]
        where = f"{file}:{first.line}" if first.line else str(file)
        raise UsageError(f"eval-set file {where}: " + "; ".join(p.message for p in exc.problems), first.hint) from None
    entries = data if isinstance(data, list) else [data]
    sets = []
    for index, entry in enumerate(entries):
        where = f"{file}" + (f"[{index}]" if isinstance(data, list) else "")
        if not isinstance(entry, dict):
            raise UsageError(f"{where}: an eval set is a mapping with format and path, got {entry!r}")
        sets.append(make_eval_set(entry, where, base=file.parent))
    return sets


def make_eval_set(fields: dict[str, Any], where: str, base: Path | None = None) -> EvalSet:
    try:
        evalset = EvalSet.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'set'}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"{where}: {problems}",
                         "fields: name, format (imagefolder|table), path, task, path_column, label_column, "
                         "text_column, templates, classnames, groups") from None
    path = Path(evalset.path).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    return evalset.model_copy(update={"path": str(path), "name": evalset.label})


def _did_you_mean(name: str, choices: list[str]) -> str:
    return " ".join(filter(None, [did_you_mean(name, choices), f"columns: {', '.join(choices) or 'none'}"]))


def read_rows(evalset: EvalSet, untrusted: bool = False) -> Rows:
    """The rows of ``evalset``. ``untrusted`` (an experiment from someone else): every image it
    lists must be a regular file inside the working directory, links resolved, else a UsageError
    naming the set, the table and row (or the imagefolder's file), the path and why; no image is
    opened, and a class folder leading out is not listed."""
    path = Path(evalset.path)
    if not path.exists():
        raise UsageError(f"eval set '{evalset.label}': {path} does not exist")
    from curate.runfiles import real_folders

    within = real_folders([os.getcwd()]) if untrusted else None
    if evalset.format == "imagefolder":
        return _read_imagefolder(evalset, path, within)
    return _read_table(evalset, path, within)


def _read_imagefolder(evalset: EvalSet, root: Path, within: tuple[Path, ...] | None = None) -> Rows:
    if not root.is_dir():
        raise UsageError(f"eval set '{evalset.label}': {root} is not a folder",
                         "an imagefolder is a folder of class-named subfolders of images")
    paths, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if within is not None:  # not listed when it leads out: its names would be the classes
            from curate_train.untrusted import check_class_folder

            check_class_folder(evalset.label, f"imagefolder {root}", folder, within)
        for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            paths.append(image)
            labels.append(folder.name)
    if not paths:
        raise UsageError(f"eval set '{evalset.label}': no images in class subfolders of {root}",
                         f"expected {root}/<class>/<image> with suffixes {', '.join(IMAGE_SUFFIXES)}")
    if within is not None:
        from curate_train.untrusted import check_images

        listed = [(f"imagefolder {root}", image, image.relative_to(root).as_posix()) for image in paths]
        check_images(evalset.label, listed, within, "image")
    return Rows(paths, labels, None, str(root), within)


def _read_table(evalset: EvalSet, file: Path, within: tuple[Path, ...] | None = None) -> Rows:
    import polars as pl

    from curate.runfiles import describe_mode

    mode = file.stat().st_mode
    if not stat.S_ISREG(mode):  # polars would wait on a FIFO for a writer, and read /dev/zero forever
        raise UsageError(f"eval set '{evalset.label}': {file} is {describe_mode(mode)}, not a table file")
    try:
        if file.suffix == ".parquet":
            table = pl.read_parquet(file)
        elif file.suffix in (".csv", ".tsv"):
            table = pl.read_csv(file, separator="\t" if file.suffix == ".tsv" else ",", infer_schema_length=0)
        else:
            raise UsageError(f"eval set '{evalset.label}': {file} is not a .parquet, .csv or .tsv table")
    except UsageError:
        raise
    except Exception as exc:  # polars' own parse errors: say which file
        raise UsageError(f"eval set '{evalset.label}': cannot read {file}: {exc}") from None
    columns = table.columns
    if evalset.path_column not in columns:
        raise UsageError(f"eval set '{evalset.label}': {file} has no '{evalset.path_column}' column (image paths)",
                         _did_you_mean(evalset.path_column, columns) + "; set path_column to choose one")
    wanted = {"classification": [evalset.label_column], "retrieval": [evalset.text_column],
              "auto": [c for c in (evalset.label_column, evalset.text_column) if c in columns]}[evalset.task]
    if evalset.task == "auto" and not wanted:
        raise UsageError(f"eval set '{evalset.label}': {file} has neither a '{evalset.label_column}' column "
                         f"(classification) nor a '{evalset.text_column}' column (retrieval)",
                         _did_you_mean(evalset.label_column, columns) + "; set label_column or text_column")
    for column in wanted:
        if column not in columns:
            option = "label_column" if column == evalset.label_column else "text_column"
            raise UsageError(f"eval set '{evalset.label}': {file} has no '{column}' column",
                             _did_you_mean(column, columns) + f"; set {option} to choose one")
    for column in [evalset.path_column, *wanted]:
        nulls = table[column].is_null()
        if nulls.any():
            row = int(nulls.arg_true()[0])
            raise UsageError(f"eval set '{evalset.label}': {file} row {row}: '{column}' is empty")
    written = table[evalset.path_column].cast(pl.Utf8).to_list()
    paths = [Path(p) if Path(p).is_absolute() else file.parent / p for p in written]
    if within is not None:
        from curate_train.untrusted import check_images

        listed = [(f"{file} row {row}", path, raw) for row, (path, raw) in enumerate(zip(paths, written))]
        check_images(evalset.label, listed, within, "row")
    labels = table[evalset.label_column].cast(pl.Utf8).to_list() if evalset.label_column in wanted else None
    texts = table[evalset.text_column].cast(pl.Utf8).to_list() if evalset.text_column in wanted else None
    return Rows(paths, labels, texts, str(file), within)


def load_images(rows: Rows, preprocess: Callable[[Any], Any], indices: list[int]):
    """Preprocessed images of ``indices``; a missing or unreadable image is an error naming its row.
    Rows read untrusted (``rows.within``): each image is checked again and opened at its real path
    as a regular file (``O_NONBLOCK``), so one changed since read_rows is refused, not followed."""
    import torch
    from PIL import Image, UnidentifiedImageError

    tensors = []
    for index in indices:
        path = rows.paths[index]
        if rows.within is None and not path.is_file():
            raise UsageError(f"{rows.where} row {index}: image {path} does not exist",
                             "paths are relative to the table's folder")
        try:
            if rows.within is not None:  # an untrusted set's: checked again, opened at its real path
                from curate_train.untrusted import open_image

                with open_image(path, rows.within, f"{rows.where} row {index}") as handle, \
                        Image.open(handle) as image:
                    tensors.append(preprocess(image.convert("RGB")))
                continue
            with Image.open(path) as image:
                tensors.append(preprocess(image.convert("RGB")))
        except (UnidentifiedImageError, OSError) as exc:
            raise UsageError(f"{rows.where} row {index}: cannot read image {path}: {exc}") from None
    return torch.stack(tensors)


def encode_rows(model: Any, preprocess: Any, rows: Rows, indices: list[int], batch: int = 128):
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(indices), batch):
            images = load_images(rows, preprocess, indices[i:i + batch])
            out.append(torch.nn.functional.normalize(model.encode_image(images), dim=-1))
    return torch.cat(out)


def encode_texts(model: Any, tokenizer: Any, texts: list[str], batch: int = 256):
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            out.append(torch.nn.functional.normalize(model.encode_text(tokenizer(texts[i:i + batch])), dim=-1))
    return torch.cat(out)


def class_weights(model: Any, tokenizer: Any, prompts: list[list[str]]):
    """One unit vector per class: the mean of its prompts' normalized embeddings, renormalized."""
    import torch

    per_class = len(prompts[0])
    flat = [p for class_prompts in prompts for p in class_prompts]
    weights = encode_texts(model, tokenizer, flat).reshape(len(prompts), per_class, -1).mean(1)
    return torch.nn.functional.normalize(weights, dim=-1)


def ranking(scores):
    """Column indices of each row of ``scores``, best first; equal scores keep index order."""
    import torch

    return torch.argsort(scores, dim=1, descending=True, stable=True)


def topk_accuracy(images, weights, truth: list[int], ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Share of images whose true class is among their k most similar classes."""
    import torch

    order = ranking(images @ weights.T)
    target = torch.tensor(truth).unsqueeze(1)
    return {k: int((order[:, :k] == target).any(1).sum()) / len(truth) for k in ks}


def retrieval_recall(images, texts, image_of_text: list[int], ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """i2t R@k: an image is right when any of its texts is in its top k; t2i R@k: a text is right
    when its image is in its top k. ``image_of_text[t]`` is text t's row in ``images``."""
    import torch

    similarity = images @ texts.T
    owner = torch.tensor(image_of_text)
    i2t = ranking(similarity)
    t2i = ranking(similarity.T)
    image_ids = torch.arange(images.shape[0]).unsqueeze(1)
    results = {}
    for k in ks:
        results[f"i2t_r{k}"] = (owner[i2t[:, :k]] == image_ids).any(1).float().mean().item()
        results[f"t2i_r{k}"] = (t2i[:, :k] == owner.unsqueeze(1)).any(1).float().mean().item()
    return results


def evaluate_set(model: Any, preprocess: Any, tokenizer: Any, evalset: EvalSet,
                 untrusted: bool = False) -> dict[str, Any]:
    """Metrics of one eval set: classification and/or retrieval, as its columns allow;
    ``untrusted``: it comes from someone else (read_rows)."""
    import torch

    rows = read_rows(evalset, untrusted)
    results: dict[str, Any] = {"n": len(rows.paths)}
    unique: dict[Path, int] = {}  # rows with the same image path share one image (and its encoding)
    firsts = []
    for row, path in enumerate(rows.paths):
        if path not in unique:
            unique[path] = len(unique)
            firsts.append(row)
    images = encode_rows(model, preprocess, rows, firsts)
    per_row = images[torch.tensor([unique[p] for p in rows.paths])]
    if rows.labels is not None:
        classes = sorted(set(rows.labels))
        names = dict(evalset.classnames or {})
        unknown = [key for key in names if key not in classes]
        if unknown:
            raise UsageError(f"eval set '{evalset.label}': classnames names '{unknown[0]}', which is not a class",
                             " ".join(filter(None, [did_you_mean(unknown[0], classes),
                                                    f"classes: {', '.join(classes[:20])}"])))
        prompts = [[t.format(names.get(c, c)) for t in evalset.templates] for c in classes]
        weights = class_weights(model, tokenizer, prompts)
        ks = (1, 5) if len(classes) > 5 else (1,)
        truth = [classes.index(label) for label in rows.labels]
        accuracy = topk_accuracy(per_row, weights, truth, ks)
        results.update({f"acc{k}": v for k, v in accuracy.items()}, classes=len(classes),
                       chance=1 / len(classes))
        for group, members in (evalset.groups or {}).items():
            results.update(group_accuracy(evalset, group, members, classes, per_row, weights, truth, ks))
    if rows.texts is not None:
        texts = encode_texts(model, tokenizer, rows.texts)
        results.update(retrieval_recall(images, texts, [unique[p] for p in rows.paths]), images=len(unique))
    return results


def check_groups(evalset: EvalSet, rows: Rows | None = None) -> None:
    """Before any training: every class a group names has images in the set (reads the labels
    only, or takes the ``rows`` read already)."""
    if not evalset.groups:
        return
    rows = rows or read_rows(evalset)
    if rows.labels is None:
        raise UsageError(f"eval set '{evalset.label}': groups need class labels, and {rows.where} has none",
                         "groups go with a classification set (a label column or an imagefolder)")
    classes = sorted(set(rows.labels))
    for group, members in evalset.groups.items():
        for member in members:
            if member not in classes:
                raise UsageError(f"eval set '{evalset.label}': group '{group}' names '{member}', which is not a class",
                                 " ".join(filter(None, [did_you_mean(member, classes),
                                                        f"classes: {', '.join(classes[:20])}"])))


def group_accuracy(evalset: EvalSet, group: str, members: list[str], classes: list[str], images, weights,
                   truth: list[int], ks: tuple[int, ...]) -> dict[str, float]:
    """``acc{k}_<group>``: top-k accuracy over the images whose true class is in ``members``,
    ranked among all classes; ``n_<group>`` images. A member that is no class is an error."""
    import torch

    unknown = [m for m in members if m not in classes]
    if unknown:
        raise UsageError(f"eval set '{evalset.label}': group '{group}' names '{unknown[0]}', which is not a class",
                         " ".join(filter(None, [did_you_mean(unknown[0], classes),
                                                f"classes: {', '.join(classes[:20])}"])))
    wanted = {classes.index(m) for m in members}
    rows = [i for i, t in enumerate(truth) if t in wanted]
    if not rows:
        raise UsageError(f"eval set '{evalset.label}': no image belongs to group '{group}' ({', '.join(members)})",
                         "a group lists classes that have images in the set")
    accuracy = topk_accuracy(images[torch.tensor(rows)], weights, [truth[i] for i in rows], ks)
    return {**{f"acc{k}_{group}": v for k, v in accuracy.items()}, f"n_{group}": len(rows)}


def evaluate_sets(model: Any, preprocess: Any, tokenizer: Any, sets: list[EvalSet],
                  untrusted: bool = False) -> dict[str, dict[str, Any]]:
    """Metrics of each set by its name; ``untrusted``: the sets come from someone else (read_rows)."""
    names = [s.label for s in sets]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise UsageError(f"two eval sets are named '{duplicated[0]}'", "give each a distinct name: field")
    return {s.label: evaluate_set(model, preprocess, tokenizer, s, untrusted) for s in sets}
