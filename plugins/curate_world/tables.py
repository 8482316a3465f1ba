"""File layout and table schemas of a world directory, and a deterministic Parquet writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORLD_FILE = "world.parquet"
EVAL_FILE = "eval.parquet"
REALIGNED_FILE = "realigned.parquet"
IMAGE_DIR = "images"
EVAL_IMAGE_DIR = "eval"
IMAGE_URL_PREFIX = "/img/"  # fault injection applies here
EVAL_URL_PREFIX = "/eval/"  # always served cleanly

# Column -> type; "?" marks columns that may be null. Kept as data so docs and tests can read it.
WORLD_SCHEMA: dict[str, str] = {
    "world_id": "int64",
    "url_path": "string",  # /img/000123.jpg; the server's base URL + this is the row's url
    "image_path": "string",  # images/000123.jpg, relative to the world directory
    "alt_text": "string",
    "noise_type": "string",  # faithful, partial, wrong_attribute, unrelated, boilerplate, empty
    "noise_detail": "string?",  # what is missing or wrong ("color: red -> blue")
    "alt_mentions_entity": "bool",  # alt_text names the entity that is in the image
    "description": "string",  # canonical full description (curate_world.describe grammar)
    "objects": "string",  # JSON list of {shape, color, size, position[, entity]}
    "n_objects": "int64",
    "entity": "string?",
    "background": "string",
    "texture": "string",
    "scene_id": "int64",  # equal scene_id = equal content
    "dup_group": "int64?",  # planted near-duplicate group; null for singletons
    "fault": "string",  # none, 404, 500, slow, truncated, not_image, oversized, redirect, redirect_loop, noai
    "split": "string",  # train or val, by scene, so dup groups never straddle splits
    "width": "int64",
    "height": "int64",
    "jpeg_quality": "int64?",  # null for PNG worlds
}
# Added to WORLD_SCHEMA in worlds with web styling on (web_style_rate > 0); worlds without it keep
# the schema, and the bytes, they had before the styles existed.
WEB_STYLE_SCHEMA: dict[str, str] = {
    "alt_text_plain": "string",  # the alt-text before styling: what noise_type describes
    "styles": "list[string]",  # web styles applied, in order (curate_world.webstyle.STYLES); [] if none
    "style_detail": "string?",  # JSON: what each style did ({"misspelling": {"word": "red", "as": "rde"}})
    "alt_texts": "string?",  # JSON list of all the image's alt-texts when they disagree (multi_alt), own first
}
EVAL_SCHEMA: dict[str, str] = {
    "eval_id": "int64",
    "url_path": "string",  # /eval/000001.jpg
    "image_path": "string",
    "description": "string",  # canonical, entity named
    "visual_description": "string",  # canonical, logos described by their look only
    "objects": "string",
    "n_objects": "int64",
    "entity": "string?",  # class label for entity recognition
    "background": "string",
    "texture": "string",
    "label_shape": "string",  # of the single large object: zero-shot class labels
    "label_color": "string",
    "label_position": "string",
}
REALIGNED_SCHEMA: dict[str, str] = {
    "world_id": "int64",
    "url_path": "string",
    "alt_text": "string",
    "noise_type": "string",
    "caption": "string",  # what an annotator writes from the image and the alt-text
    "entity": "string?",  # the entity name the caption keeps, if any
    "description": "string",
    "objects": "string",
    "fault": "string",
    "split": "string",
}


def polars_schema(schema: dict[str, str]):  # type: ignore[no-untyped-def]
    import polars as pl

    types = {"int64": pl.Int64, "string": pl.String, "bool": pl.Boolean, "list[string]": pl.List(pl.String)}
    return {name: types[kind.rstrip("?")] for name, kind in schema.items()}


def write_table(rows: list[dict[str, Any]], schema: dict[str, str], path: Path) -> None:
    """Write with fixed settings, so equal rows give equal bytes. Polars rather than pyarrow:
    ``import pyarrow.parquet`` drags in pandas, a second or more of start-up for nothing."""
    import polars as pl

    frame = pl.DataFrame({name: [row[name] for row in rows] for name in schema}, schema=polars_schema(schema))
    frame.write_parquet(
        path, compression="zstd", compression_level=3, statistics=True, row_group_size=100_000
    )
