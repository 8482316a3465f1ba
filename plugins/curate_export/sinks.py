"""Sinks for training clients: WebDataset tars and an HF imagefolder. Images come from the download
step's store through :mod:`curate.images`; a whole JPEG that no EXIF orientation turns is written
as it is, any other image re-encoded as every step saw it (upright, transparency on white), so every
sample is a ``jpg``. Rows without an image are skipped, counted in the output's facts
(``rows_without_image``) and warned of (an export of 12 rows wrote 6 without a word); so are rows
whose image does not decode (``rows_with_unreadable_image``: one failed the whole export, its hint
blaming the folder's permissions). A spec run with ``--untrusted`` has its
images read only from the working directory, the run directory and its store: a row naming one
elsewhere fails the export, naming the row (as a shard that is gone does), and nothing of it is read."""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import Field

from curate_export.folder import check_ours, export_folder
from curate_export.tars import TarShards

from curate.filekeys import file_key
from curate.hashing import uniform
from curate.errors import OutputError
from curate.images import ImageOutside, decode_rgb, iter_images
from curate.jpeg import jpeg_orientation, whole_jpeg
from curate.params import PLACE, Params
from curate.schema import UID
from curate.sink import Sink
from curate.step import TableInput


class ExportWarning(UserWarning):
    """An export left rows out (they had no image) or wrote nothing."""


def json_text(row: dict[str, Any]) -> str:
    """A sample's JSON: dates and times as ISO 8601 (a crawl date in ``metadata`` failed the export
    after every step had run), bytes as base64, anything else JSON has no type for as its text."""
    return json.dumps(row, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    import base64
    import datetime as dt
    from decimal import Decimal

    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


class ExportParams(Params):
    caption: str = Field("caption", description="column written as the sample's text")
    captions: str | None = Field("captions", description="list column of candidates (the mix's `multi`), if present")
    metadata: list[str] = Field(default_factory=lambda: ["alt_text", "caption_source"],
                                description="further columns kept in each sample's JSON (when present)")
    store_dir: str | None = Field(None, description="the image store (default: the run's, from manifest.json)",
                                  json_schema_extra=PLACE)
    batch_rows: int = Field(512, gt=0, json_schema_extra={"fingerprint": False})


def store_dir_of(sink: Sink) -> Path:
    if sink.params.store_dir:
        return sink.ctx.resolve(sink.params.store_dir)
    manifest = sink.ctx.run_dir / "manifest.json"
    if manifest.is_file():
        store = json.loads(manifest.read_text()).get("store_dir")
        if store:
            return Path(store)
    return sink.ctx.run_dir


def jpeg_bytes(data: bytes) -> bytes | None:
    """The sample's ``jpg``: a whole JPEG that no EXIF orientation turns as it is (what the download
    step stores), anything else the picture every step saw (:func:`curate.images.decode_rgb`:
    upright, transparency on white, 16-bit at 8 bits), re-encoded; None when it does not decode.
    A turned JPEG passed through showed its trainer another picture than CLIP scored (a loader
    that ignores EXIF), and a truncated one a file the trainer cannot read."""
    if whole_jpeg(data) and jpeg_orientation(data) == 1:
        return data
    image = decode_rgb(data)
    if image is None:
        return None
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def export_columns(sink: Sink) -> dict[str, Any]:
    """What :func:`samples` reads; planning checks them before any step runs. The ``metadata``
    columns a spec names are among them (a misspelt one dropped the lineage column without a
    word); the default ones are kept when present."""
    named = sink.params.metadata if "metadata" in sink.params.model_fields_set else []
    return {UID: pl.Utf8, "image": None, sink.params.caption: pl.Utf8, **{c: None for c in named}}


def samples(sink: Sink, table: TableInput, skipped: dict[str, int] | None = None
            ) -> Iterator[tuple[dict[str, Any], bytes]]:
    """(row, jpeg bytes) for every row with an image, in table order; ``skipped["rows_without_image"]``
    counts the others, ``skipped["rows_with_unreadable_image"]`` those whose image does not decode
    (a truncated file, an HTML page, an empty one: a row without an image to every step before)."""
    frame = table.scan()
    names = frame.collect_schema().names()
    wanted = [UID, "image", sink.params.caption]
    if sink.params.captions and sink.params.captions in names:
        wanted.append(sink.params.captions)
    wanted += [c for c in sink.params.metadata if c in names and c not in wanted]
    store = store_dir_of(sink)
    for batch in frame.select(wanted).collect().iter_slices(sink.params.batch_rows):
        rows = batch.to_dicts()
        read = 0
        try:
            for row, data in zip(rows, iter_images(batch["image"], store, as_bytes=True,
                                                   within=sink.ctx.image_folders), strict=True):
                read += 1
                jpeg = None if data is None else jpeg_bytes(data)
                if jpeg is not None:
                    row.pop("image")
                    yield row, jpeg
                elif skipped is not None:
                    which = "rows_without_image" if data is None else "rows_with_unreadable_image"
                    skipped[which] = skipped.get(which, 0) + 1
        except ImageOutside as refused:  # an untrusted spec's row names an image of this machine's
            raise OutputError(f"output '{sink.format}' ({sink.ctx.path}): row {rows[read][UID]!r}: {refused}",
                              refused.hint) from None


class WebDatasetParams(ExportParams):
    samples_per_shard: int = Field(1000, gt=0, description="samples per tar")
    repeats: int = Field(1, ge=1, le=1000, description="write every sample this many times (unrolled epochs); "
                         "with a captions column each copy's text is a seeded draw among the candidates")
    seed: int | None = Field(None, description="seed of the per-copy draw (default: the run's seed)")


class WebDatasetSink(Sink):
    """``NNNNN.tar`` shards of ``<key>.jpg``, ``<key>.txt`` (the caption) and ``<key>.json`` (uid,
    metadata, all candidates) — what ``open_clip_train --dataset-type webdataset`` reads. The key
    is the uid (:func:`curate.filekeys.file_key` of it where the uid is not a safe file name).

    open_clip's loader has no per-epoch hook, so LaCLIP-style sampling of one candidate per epoch
    is unrolled into the data: ``repeats: E`` writes E copies, copy e drawing its text from
    (uid, seed, e) (with one copy the text is the ``caption`` column, the mix's own draw), and
    training runs one pass over all of them. Copies follow one another in shard order (copy 0's
    rows, then copy 1's…), so a shard may hold the end of one copy and the start of the next:
    set ``samples_per_shard`` to a divisor of the row count to keep each shard to one copy. The
    sample's JSON says which copy (``repeat``) and which candidate its text is (``text_index``)."""

    format = "webdataset"
    description = "WebDataset tars (jpg + txt + json) for open_clip_train / webdataset"
    requires = ("PIL",)
    extra = "export"
    path_kind = "folder"
    Params = WebDatasetParams

    def input_columns(self) -> dict[str, Any]:
        return export_columns(self)

    def preflight(self) -> None:
        check_ours(self.ctx.output_path, self.format)

    def write(self, table: TableInput) -> dict[str, Any]:
        out = self.ctx.output_path
        facts: dict[str, Any] = {}
        # Written into a temporary folder, put in place when whole (see folder.py): a killed
        # export is absent, not a truncated tar that `tar tf` reads without complaint.
        with export_folder(out, self.format, facts) as partial:
            facts.update(self._write_into(partial, table))
        facts["pattern"] = str(out / (f"{{00000..{facts['shards'] - 1:05d}}}.tar" if facts["shards"] else "none"))
        return facts

    def _write_into(self, out: Path, table: TableInput) -> dict[str, Any]:
        seed = self.params.seed if self.params.seed is not None else self.ctx.seed
        uids = table.scan().select(UID).collect()[UID] if self.params.repeats > 1 else None
        skipped: dict[str, int] = {}
        counted = [True]  # the repeats read the rows again: count those without an image once

        def rows() -> Iterator[tuple[dict[str, Any], bytes]]:
            yield from samples(self, table, skipped if counted[0] else None)
            counted[0] = False

        facts = write_shards(out, rows, self.params, seed, uids, wrote=self.ctx.space_guard().wrote)
        return {**facts, **_left_out(self, facts["rows"], skipped)}


def write_shards(out: Path, samples: Callable[[], Iterable[tuple[dict[str, Any], bytes]]],
                 params: WebDatasetParams, seed: int, uids: pl.Series | None = None,
                 wrote: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write ``samples()`` (rows and their jpeg bytes) as tar shards, pulling one sample at a time:
    memory holds one image, not a shard's or the table's. Each of ``repeats`` copies calls
    ``samples()`` again (the images are read again) rather than keeping them. A copy's caption draw
    is per uid (``uniform`` hashes each uid alone), so it is drawn once per copy over ``uids`` (the
    table's: needed only when ``repeats > 1``). ``wrote`` is told the bytes of each sample first
    (:meth:`curate.sink.SinkContext.space_guard`)."""
    column = params.captions
    rows = 0
    with TarShards(out, params.samples_per_shard, wrote) as shards:
        for repeat in range(params.repeats):
            draws = dict(zip(uids, uniform(uids, seed, f"epoch:{repeat}"), strict=True)) \
                if params.repeats > 1 and uids is not None and len(uids) else {}
            for row, image in samples():
                rows += repeat == 0
                text = row[params.caption]
                candidates = row.get(column) if column else None
                chosen: dict[str, Any] = {}
                if candidates and params.repeats > 1:
                    draw = draws[row[UID]]
                    index = min(int(draw * len(candidates)), len(candidates) - 1)
                    text, chosen = candidates[index], {"text_index": index}
                # a safe name without dots (webdataset's key ends at the first): see curate.filekeys
                key = file_key(row[UID]) + (f"_{repeat}" if params.repeats > 1 else "")
                shards.add(key, [("jpg", image), ("txt", (text or "").encode()),
                                 ("json", json_text({**row, "repeat": repeat, **chosen}).encode())])
    # every sample has one .jpg: the count per shard is what the loaders' sizes.json means
    (out / "sizes.json").write_text(json.dumps({p.name: n for p, n in zip(shards.paths, shards.counts, strict=True)}))
    return {"rows": rows, "samples": shards.written, "shards": len(shards.paths)}


class ImageFolderSink(Sink):
    """``images/<key>.jpg`` (the uid's :func:`curate.filekeys.file_key`) plus ``metadata.jsonl``
    (``file_name``, ``text`` and metadata, the uid among them) —
    what ``datasets.load_dataset("imagefolder", data_dir=...)`` and diffusers' scripts read."""

    format = "imagefolder"
    description = "HF imagefolder: images/ + metadata.jsonl (file_name, text, ...)"
    requires = ("PIL",)
    extra = "export"
    path_kind = "folder"
    Params = ExportParams

    def input_columns(self) -> dict[str, Any]:
        return export_columns(self)

    def preflight(self) -> None:
        check_ours(self.ctx.output_path, self.format)

    def write(self, table: TableInput) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        with export_folder(self.ctx.output_path, self.format, facts) as partial:
            facts.update(self._write_into(partial, table))
        return facts

    def _write_into(self, out: Path, table: TableInput) -> dict[str, Any]:
        images = out / "images"
        images.mkdir(parents=True, exist_ok=True)
        rows = 0
        guard = self.ctx.space_guard()
        skipped: dict[str, int] = {}
        with (out / "metadata.jsonl").open("w", encoding="utf-8") as handle:
            for row, image in samples(self, table, skipped):
                name = f"{file_key(row[UID])}.jpg"  # never outside images/, never another row's
                text = row.pop(self.params.caption)
                record = json_text({"file_name": f"images/{name}", "text": text, **row}) + "\n"
                guard.wrote(len(image) + len(record))
                (images / name).write_bytes(image)
                handle.write(record)
                rows += 1
        return {"rows": rows, **_left_out(self, rows, skipped)}


def _left_out(sink: Sink, rows: int, skipped: dict[str, int]) -> dict[str, int]:
    """The facts of rows an export left out, each warned of: a training set missing rows of the
    curated table (or holding none) is the user's to know before training on it."""
    missing = skipped.get("rows_without_image", 0)
    unreadable = skipped.get("rows_with_unreadable_image", 0)
    total = rows + missing + unreadable
    if missing:
        warnings.warn(f"output '{sink.format}' ({sink.ctx.path}) left out {missing:,} of {total:,} rows: "
                      "they have no image (a failed download kept with drop_failed: false, or an image gone); "
                      "drop them before the output, or fetch them again", ExportWarning, stacklevel=2)
    if unreadable:
        warnings.warn(f"output '{sink.format}' ({sink.ctx.path}) left out {unreadable:,} of {total:,} rows: "
                      "their image does not decode (a truncated file, an HTML page, an empty file; their "
                      "clip_score is null); drop them before the output (e.g. clip_filter drops rows "
                      "without a score)", ExportWarning, stacklevel=2)
    if rows == 0 and not missing and not unreadable:
        warnings.warn(f"output '{sink.format}' ({sink.ctx.path}) holds no rows: the curated table is empty",
                      ExportWarning, stacklevel=2)
    return {"rows_without_image": missing, "rows_with_unreadable_image": unreadable}
