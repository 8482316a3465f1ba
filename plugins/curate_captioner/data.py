"""Training examples for the two stages, and the frozen encoder's features computed once.

A training table has one row per (image, text): ``image`` (a local path, or an image reference
``{shard, key}`` read through :mod:`curate.images` from the run's store), ``alt_text``, an optional ``group`` (rows showing the same
image or scene; stage 1 prompts with another alt-text of the group) and, for stage 2, ``caption``.

Each epoch draws its prompts afresh: half the examples get the alt-text prompt, half an empty one,
so one model captions with and without alt-text (Altogether).

    stage 1  target: an alt-text of the image     prompt: another alt-text of it, or empty
    stage 2  target: the realigned caption        prompt: the image's alt-text, or empty
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from curate_captioner.config import EMPTY_PROMPT_RATE as EMPTY_PROMPT_RATE  # re-exported
from curate_captioner.errors import CaptionerError

if TYPE_CHECKING:
    import torch

    from curate.images import ImageFolders
    from curate_captioner.model import Captioner



@dataclass
class Example:
    image: int  # row of the feature matrix
    prompt: str
    target: str


def world_table(world_dir: str | Path, stage: int, split: str = "train") -> pl.DataFrame:
    """The training table of a generated world: stage 1 from world.parquet (grouped by scene),
    stage 2 from realigned.parquet. Only rows of ``split`` (``val`` rows are held out)."""
    from curate_world.api import REALIGNED_FILE, WORLD_FILE

    root = Path(world_dir).resolve()
    world = pl.read_parquet(root / WORLD_FILE)
    world = world.with_columns((pl.lit(str(root) + "/") + pl.col("image_path")).alias("image"))
    if stage == 1:
        table = world.select("image", "alt_text", pl.col("scene_id").alias("group"), "split")
    else:
        realigned = pl.read_parquet(root / REALIGNED_FILE).select("world_id", "caption")
        table = world.join(realigned, on="world_id", how="inner").select("image", "alt_text", "caption", "split")
    return table.filter(pl.col("split") == split).drop("split")


def draw_examples(table: pl.DataFrame, stage: int, rng: np.random.Generator,
                  empty_prompt_rate: float = EMPTY_PROMPT_RATE) -> list[Example]:
    """One epoch of examples over ``table`` (row i's image is feature row i)."""
    alt = [a or "" for a in table["alt_text"].to_list()]
    examples: list[Example] = []
    if stage == 2:
        if "caption" not in table.columns:
            raise CaptionerError("stage 2 needs a 'caption' column (the realigned caption of each row)")
        for row, caption in enumerate(table["caption"].to_list()):
            if caption:
                prompt = "" if rng.random() < empty_prompt_rate else alt[row]
                examples.append(Example(row, prompt, caption))
        return examples
    groups = table["group"].to_list() if "group" in table.columns else list(range(table.height))
    members: dict[Any, list[int]] = {}
    for row, group in enumerate(groups):
        if alt[row].strip():
            members.setdefault(group, []).append(row)
    for row, group in enumerate(groups):
        if not alt[row].strip():
            continue
        others = [r for r in members[group] if r != row]
        prompt = alt[others[int(rng.integers(len(others)))]] if others and rng.random() >= empty_prompt_rate else ""
        examples.append(Example(row, prompt, alt[row]))
    return examples


def open_images(values: Sequence[Any], root: str | Path | None = None, store_dir: str | Path | None = None,
                within: ImageFolders | None = None) -> list[Any]:
    """RGB PIL images of a column of local paths or image references ({shard, key}, read through
    :mod:`curate.images` from the run's store); None where a row has no readable image.
    ``within`` (an untrusted spec's ``ctx.image_folders``): the only folders either is read from;
    a path outside is a row without an image, a reference outside raises
    :class:`curate.images.ImageOutside` (as one to a shard that is gone raises); neither is read."""
    from curate.images import read_image_file

    images: list[Any] = [None] * len(values)
    refs = [index for index, value in enumerate(values) if isinstance(value, dict)]
    for index, value in enumerate(values):
        if isinstance(value, str) and value:
            path = Path(value) if root is None or Path(value).is_absolute() else Path(root) / value
            try:
                images[index] = _decode(read_image_file(path, within=within))
            except OSError:
                images[index] = None
    if refs:
        from curate.images import open_images as read_refs

        for index, data in zip(refs, read_refs([values[i] for i in refs], store_dir, as_bytes=True, within=within),
                               strict=True):
            images[index] = None if data is None else _decode(data)
    return images


def image_identity(value: Any) -> Hashable:
    """What names one image, hashable: a path as it is, a reference ``{shard, key}`` as
    ``(shard, key)`` (a dict cannot key a dict: a table's refs arrive as dicts)."""
    if isinstance(value, Mapping):
        return value.get("shard"), value.get("key")
    return value


def _decode(data: bytes) -> Any:
    """A decoded RGB image as every step sees it (:func:`curate.images.decode_rgb`), or None for
    bytes that are not an image (truncated, HTML, …)."""
    from curate.images import decode_rgb

    return decode_rgb(data)


def open_training_images(chunk: Sequence[Any], within: ImageFolders | None = None,
                         store_dir: str | Path | None = None) -> list[Any]:
    """PIL images of ``chunk`` (paths, image references or PIL images; a reference's shard is
    relative to ``store_dir``, the run's store; read only ``within`` those folders when given:
    see :func:`open_images`); an unreadable one is an error naming it, since training on a hole
    would silently shift every later row."""
    opened = open_images(chunk, None, store_dir, within) if isinstance(chunk[0], (str, dict)) else list(chunk)
    missing = [chunk[i] for i, image in enumerate(opened) if image is None]
    if missing:
        if within is not None:  # said as such: "drop rows without images" would not be the fix
            from curate.runfiles import confined

            for value in missing:
                if isinstance(value, str) and confined(value, within.folders) is None:
                    folders = ", ".join(map(str, within.folders))
                    why = f"; {within.why}" if within.why else ""
                    raise CaptionerError(f"training image {value!r} lies outside {folders}{why}", within.hint)
        raise CaptionerError(f"cannot read training image {missing[0]!r} ({len(missing)} unreadable in this batch)",
                             "drop rows without images first")
    return opened


def preprocessed_pixels(images: Sequence[Any], encoder_config: dict[str, Any], batch_size: int = 512, *,
                        within: ImageFolders | None = None, store_dir: str | Path | None = None) -> torch.Tensor:
    """Every image decoded and preprocessed once, as float16 (N, 3, S, S): an encoder that trains
    needs pixels on every step, and decoding PNGs each time would cost more than the step."""
    import torch

    from curate_captioner.encoder import preprocess

    parts = [preprocess(open_training_images(images[start : start + batch_size], within, store_dir),
                        encoder_config).to(torch.float16)
             for start in range(0, len(images), batch_size)]
    return torch.cat(parts)


def compute_features(captioner: Captioner, images: Sequence[Any], batch_size: int = 256,
                     progress: Callable[[int], None] | None = None, *, within: ImageFolders | None = None,
                     store_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The frozen encoder's features of every image (paths, image references into ``store_dir``
    or PIL images), in order.

    The encoder never trains, so its features are computed once per training run instead of once
    per step: on a CPU this is what makes training the world captioner take minutes.
    """
    import torch

    pooled_parts, token_parts = [], []
    for start in range(0, len(images), batch_size):
        chunk = list(images[start : start + batch_size])
        pooled, tokens = captioner.image_features(open_training_images(chunk, within, store_dir))
        pooled_parts.append(pooled.float().cpu())
        if tokens is not None:
            token_parts.append(tokens.to(torch.float16).cpu())
        if progress is not None:
            progress(len(chunk))
    pooled = torch.cat(pooled_parts)
    return pooled, (torch.cat(token_parts) if token_parts else None)


def read_world(root: Path) -> pl.DataFrame:
    """A generated world's table (world.parquet), or a clear error when ``root`` is no world."""
    from curate_world.api import WORLD_FILE

    if not (root / WORLD_FILE).exists():
        raise CaptionerError(f"{root} is not a generated world (no {WORLD_FILE})", "run `curate world generate` first")
    return pl.read_parquet(root / WORLD_FILE)


def scene_content(rows: pl.DataFrame) -> pl.Series:
    """What each world row's scene shows (objects, background, texture) as one string: scenes with
    different ids can show the same thing (simple scenes recur, and two worlds draw alike)."""
    return rows.select(pl.concat_str(["objects", "background", "texture"], separator="|")).to_series()
