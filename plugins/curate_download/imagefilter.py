"""``image_filter``: drop rows whose image is degenerate (a 1 x 1 tracking pixel, a 20000 x 10
strip, an icon), or whose reference names no readable image, each with its reason.

The download step's own ``min_image_size`` / ``max_aspect_ratio`` are off by default, and a table
of local images never passes through them; left in, such images were scored by CLIP and given an
invented caption by the captioner ("a large red circle in the top left corner" for a 1 x 1 pixel),
which ``mix`` then chose.

A row's size is, by ``sizes``: the ``original_width`` / ``original_height`` columns when the table
has them (``auto``: the download step writes them, the image as served and upright; the stored
image may be resized, a 1 x 1 pixel stored 256 x 256 by ``resize_mode: border``), else the image
file's header, read without decoding its pixels. Every check is symmetric in width and height, so
an EXIF orientation, which only swaps them, cannot change a verdict and is not read.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from curate.params import Params
from curate.schema import DROP_REASON, Image, Schema, compatible, dtype_name
from curate.shardfacts import read_shard_facts, summed, write_shard_facts
from curate.step import Step, StepContext

NO_IMAGE = "no_image"
MISSING = "image_missing"
UNREADABLE = "image_unreadable"
ELONGATED = "image_too_elongated"
SMALL = "image_too_small"
FEW_PIXELS = "image_too_few_pixels"
SIZE_TYPE = pl.Float64  # any integer or float column satisfies it (curate.schema.compatible)


class ImageFilterParams(Params):
    min_side: int = Field(32, ge=0, le=2**31 - 1, description=(
        "drop images whose shorter side is under this many pixels (image_too_small); 0: off. 32 is one "
        "patch of a ViT-B/32: below it a 224-pixel model sees a blur upscaled 7 times or more"))
    max_aspect_ratio: float | None = Field(10.0, ge=1, allow_inf_nan=False, description=(
        "drop images whose longer side is more than this many times the shorter (image_too_elongated): "
        "a square crop keeps a tenth of a 10 : 1 strip; null: off"))
    min_pixels: int | None = Field(None, ge=1, le=2**62, description=(
        "drop images of fewer pixels, width x height (image_too_few_pixels); null: off"))
    sizes: Literal["auto", "columns", "image"] = Field("auto", description=(
        "where a row's size comes from: auto (width_column / height_column where the table has both and "
        "the row has them, else the image file's header), columns (only them: works before a download, on "
        "a source's metadata), image (only the file's header: the stored image, which a download may have "
        "resized)"))
    width_column: str = Field("original_width", min_length=1,
                              description="a row's width in pixels, as served")
    height_column: str = Field("original_height", min_length=1,
                               description="a row's height in pixels, as served")
    image_column: str = Field("image", min_length=1, description="the image reference {shard, key}")
    without_image: Literal["keep", "drop"] = Field("keep", description=(
        "a row without an image (a null reference; with sizes: columns, a null size): keep it, or drop it "
        "(no_image); the download step's drop_failed decides about failed downloads"))
    unreadable: Literal["drop", "keep"] = Field("drop", description=(
        "a reference whose file is no image Pillow reads a size from (empty, an HTML page, over Pillow's "
        "pixel limit: image_unreadable) or is not there (image_missing): drop it, or keep it (clip_score "
        "gives it a null score; an export leaves out one that does not decode, fails on one not there)"))
    decode: bool = Field(False, description=(
        "also decode every image as later steps do (curate.images.decode_rgb) and drop those that do not "
        "decode (a truncated file: its header is whole) as image_unreadable; costs a decode per image"))

    @model_validator(mode="after")
    def _consistent(self) -> ImageFilterParams:
        off = self.min_side == 0 and self.max_aspect_ratio is None and self.min_pixels is None
        if off and not self.decode and self.unreadable == "keep" and self.without_image == "keep":
            raise ValueError("every check is off (min_side 0, max_aspect_ratio and min_pixels null, "
                             "unreadable and without_image keep): the step would drop nothing; remove it, "
                             "or set one")
        if self.width_column == self.height_column:
            raise ValueError(f"width_column and height_column are both {self.width_column!r}: name two "
                             "columns")
        if self.sizes == "columns" and self.decode:
            raise ValueError("decode reads the images, and sizes: columns reads none: use sizes: auto to "
                             "judge by the columns and decode the images too")
        return self


class ImageFilter(Step):
    """Rows are judged in this order, the first that holds being the reason: no image
    (``without_image``), missing or unreadable (``unreadable``), too elongated, too small, too few
    pixels. A read that finds the run's store damaged fails the step
    (:class:`curate.images.ImageGone`, with how to fetch the images again), as every step that reads
    images does."""

    name = "image_filter"
    version = "1"
    description = "drop rows whose image is degenerate (too small, too elongated) or unreadable"
    requires = ("PIL",)
    extra = "download"
    drops_rows = True
    thread_safe = True  # no state between shards; image reads open their own files
    Params = ImageFilterParams

    def input_columns(self) -> Schema:
        p = self.params
        if p.sizes == "columns":  # no image column: a source's metadata, before a download
            return {p.width_column: SIZE_TYPE, p.height_column: SIZE_TYPE}
        return {p.image_column: Image}  # and the size columns where the input has them (plan_check)

    def plan_check(self, input_schema: Schema) -> list[str]:
        p = self.params
        if p.sizes != "auto":
            return []
        pair = (p.width_column, p.height_column)
        present = [c for c in pair if c in input_schema]
        absent = [c for c in pair if c not in input_schema]
        named = {"width_column", "height_column"} & p.model_fields_set
        if absent and (named or present):  # a column named on purpose, or half of the download's pair
            lacking = " or ".join(map(repr, absent))
            return [f"sizes: auto judges a row by {p.width_column!r} (width_column) and {p.height_column!r} "
                    f"(height_column) where the input has both, and it has no {lacking}: name both columns "
                    "of a row's size, or set sizes: image to read each image's header"]
        return [f"sizes: auto reads {c!r} as a number of pixels, but it is {dtype_name(input_schema[c])}: "
                "cast it with an 'sql' step first, or set sizes: image" for c in present
                if not compatible(input_schema[c], SIZE_TYPE)]

    def plan_check_upstream(self, upstream: list[Step]) -> list[str]:
        if self.params.sizes != "image":
            return []
        download = next((s for s in reversed(upstream) if s.name == "download"), None)
        mode = getattr(getattr(download, "params", None), "resize_mode", "no")
        if download is None or mode == "no":
            return []
        return [f"sizes: image judges the stored images, which step '{download.label}' resized "
                f"(resize_mode: {mode}): a 1 x 1 pixel is stored as large as any picture; use sizes: auto, "
                "which reads the download's original_width / original_height"]

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        rows = table.height
        width, height = np.full(rows, np.nan), np.full(rows, np.nan)
        if p.sizes != "image" and p.width_column in table.columns and p.height_column in table.columns:
            width, height = _pixels(table[p.width_column]), _pixels(table[p.height_column])
        known = ~(np.isnan(width) | np.isnan(height))
        if p.sizes == "columns":
            has_image, to_read = known, np.zeros(rows, bool)
        else:
            has_image = _references(table[p.image_column])
            to_read = has_image & (~known | p.decode)
            width[~has_image] = height[~has_image] = np.nan  # a size without its image is not judged
        early = np.where(has_image, None, NO_IMAGE).astype(object)  # decided before the size is
        if to_read.any():
            from curate.images import image_reader

            refs = table[p.image_column].gather(np.flatnonzero(to_read)).to_list()
            with image_reader(ctx.extras.get("store_dir"), within=ctx.image_folders) as read:
                for row, ref in zip(np.flatnonzero(to_read), refs, strict=True):
                    size, problem = self._read_size(read, ref)
                    if problem is not None:
                        early[row] = problem
                    elif not known[row]:
                        width[row], height[row] = size
        sized = np.array([reason is None for reason in early], bool)
        write_shard_facts(ctx, {"sized_by": {"columns": int((has_image & known & sized).sum()),
                                             "image": int((to_read & ~known & sized).sum())}})
        policy = {NO_IMAGE: p.without_image, MISSING: p.unreadable, UNREADABLE: p.unreadable}
        first = [None if reason is None or policy[reason] == "keep" else reason for reason in early]
        # Both sides or neither (min_horizontal skips a null side), and nulls, not NaN: polars orders
        # NaN above every number
        unsized = np.isnan(width) | np.isnan(height)
        width[unsized] = height[unsized] = np.nan
        sides = pl.Series(width, nan_to_null=True), pl.Series(height, nan_to_null=True)
        return table.with_columns(self._reason(pl.Series(first, dtype=pl.Utf8), *sides))

    def _read_size(self, read: Callable[[Any], bytes | None], ref: Any
                   ) -> tuple[tuple[int, int], str | None]:
        """The image's (width, height) from its header (or its decoded picture, with ``decode``),
        or the reason there is none. :class:`curate.images.ImageGone` (the run's store damaged) is
        not caught: the step fails with how to fetch the images again."""
        from curate.images import ImageNotFound, decode_rgb

        try:
            data = read(ref)
        except (ImageNotFound, OSError):  # not there, or outside an untrusted spec's folders (not opened)
            return (0, 0), MISSING
        if not data:
            return (0, 0), UNREADABLE
        if self.params.decode:
            picture = decode_rgb(data)
            return (0, 0) if picture is None else picture.size, UNREADABLE if picture is None else None
        size = header_size(data)
        return (0, 0) if size is None else size, UNREADABLE if size is None else None

    def _reason(self, first: pl.Series, width: pl.Series, height: pl.Series) -> pl.Expr:
        p = self.params
        shorter = pl.min_horizontal(pl.lit(width), pl.lit(height))
        longer = pl.max_horizontal(pl.lit(width), pl.lit(height))
        reason = pl.when(pl.lit(first).is_not_null()).then(pl.lit(first))
        if p.max_aspect_ratio is not None:  # as a product: no division by a side of 0
            elongated = (shorter > 0) & (longer > p.max_aspect_ratio * shorter)
            reason = reason.when(elongated).then(pl.lit(ELONGATED))
        if p.min_side:
            reason = reason.when(shorter < p.min_side).then(pl.lit(SMALL))
        if p.min_pixels is not None:
            reason = reason.when(pl.lit(width) * pl.lit(height) < p.min_pixels).then(pl.lit(FEW_PIXELS))
        return reason.otherwise(pl.lit(None, pl.Utf8)).alias(DROP_REASON)

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        p = self.params
        return {"min_side": p.min_side, "max_aspect_ratio": p.max_aspect_ratio, "min_pixels": p.min_pixels,
                "sizes": p.sizes, "sized_by": summed(read_shard_facts(ctx.artifacts), "sized_by")}


def _pixels(column: pl.Series) -> np.ndarray:
    """A size column as floats, NaN where a row has none (null, NaN)."""
    return column.cast(pl.Float64).fill_nan(None).fill_null(np.nan).to_numpy().copy()


def _references(column: pl.Series) -> np.ndarray:
    """Whether each row names an image (a reference with a shard and a key)."""
    if column.dtype == pl.Null:  # a column drawn all null
        return np.zeros(column.len(), bool)
    named = column.struct.field("shard").is_not_null() & column.struct.field("key").is_not_null()
    return named.fill_null(False).to_numpy().copy()


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the file's header declares them, pixels not decoded (as stored: an EXIF
    orientation would swap them); None for bytes that are no image Pillow reads, or one over its
    decompression-bomb limit (``DecompressionBombError``), which :func:`curate.images.decode_rgb`
    refuses to decode too."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # noqa: BLE001  a malformed header makes a parser raise anything (struct.error…)
        return None
