"""Sinks for training clients: WebDataset tars and an HF imagefolder. Images come from the download
step's store through :mod:`curate.images`; non-JPEG images are re-encoded so every sample is a
``jpg``. Rows without an image are skipped and counted."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import Field

from curate_export.folder import check_ours, export_folder

from curate.hashing import uniform
from curate.images import iter_images
from curate.params import Params
from curate.schema import UID
from curate.sink import Sink
from curate.step import TableInput

JPEG_MAGIC = b"\xff\xd8"


class ExportParams(Params):
    caption: str = Field("caption", description="column written as the sample's text")
    captions: str | None = Field("captions", description="list column of candidates (the mix's `multi`), if present")
    metadata: list[str] = Field(default_factory=lambda: ["alt_text", "caption_source"],
                                description="further columns kept in each sample's JSON (when present)")
    store_dir: str | None = Field(None, description="the image store (default: the run's, from manifest.json)")
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


def jpeg_bytes(data: bytes) -> bytes:
    if data[:2] == JPEG_MAGIC:
        return data
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def export_columns(sink: Sink) -> dict[str, Any]:
    """What :func:`samples` reads; planning checks them before any step runs."""
    return {UID: pl.Utf8, "image": None, sink.params.caption: pl.Utf8}


def samples(sink: Sink, table: TableInput) -> Iterator[tuple[dict[str, Any], bytes]]:
    """(row, jpeg bytes) for every row with an image, in table order."""
    frame = table.scan()
    names = frame.collect_schema().names()
    wanted = [UID, "image", sink.params.caption]
    if sink.params.captions and sink.params.captions in names:
        wanted.append(sink.params.captions)
    wanted += [c for c in sink.params.metadata if c in names and c not in wanted]
    store = store_dir_of(sink)
    for batch in frame.select(wanted).collect().iter_slices(sink.params.batch_rows):
        rows = batch.to_dicts()
        for row, data in zip(rows, iter_images(batch["image"], store, as_bytes=True), strict=True):
            if data is not None:
                row.pop("image")
                yield row, jpeg_bytes(data)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0  # byte-identical exports for identical inputs
    tar.addfile(info, io.BytesIO(data))


class WebDatasetParams(ExportParams):
    samples_per_shard: int = Field(1000, gt=0, description="samples per tar")
    repeats: int = Field(1, ge=1, le=1000, description="write every sample this many times (unrolled epochs); "
                         "with a captions column each copy's text is a seeded draw among the candidates")
    seed: int | None = Field(None, description="seed of the per-copy draw (default: the run's seed)")


class WebDatasetSink(Sink):
    """``NNNNN.tar`` shards of ``<key>.jpg``, ``<key>.txt`` (the caption) and ``<key>.json`` (uid,
    metadata, all candidates) — what ``open_clip_train --dataset-type webdataset`` reads.

    open_clip's loader has no per-epoch hook, so LaCLIP-style sampling of one candidate per epoch
    is unrolled into the data: ``repeats: E`` writes E copies, copy e drawing its text from
    (uid, seed, e) (with one copy the text is the ``caption`` column, the mix's own draw), and training runs one pass over all of them. Copies go to separate shards in
    copy order; the loader's shard and sample shuffling mixes them."""

    format = "webdataset"
    description = "WebDataset tars (jpg + txt + json) for open_clip_train / webdataset"
    requires = ("PIL",)
    extra = "export"
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
        items = list(samples(self, table))
        column = self.params.captions
        shards, written = [], 0
        tar: tarfile.TarFile | None = None
        for repeat in range(self.params.repeats):
            draws = uniform(pl.Series([row[UID] for row, _ in items], dtype=pl.Utf8), seed, f"epoch:{repeat}") \
                if items else pl.Series([], dtype=pl.Float64)
            for (row, image), draw in zip(items, draws, strict=True):
                if written % self.params.samples_per_shard == 0:
                    if tar is not None:
                        tar.close()
                    path = out / f"{len(shards):05d}.tar"
                    shards.append(path)
                    tar = tarfile.open(path, "w")  # noqa: SIM115 - kept open across rows, closed on rollover
                text = row[self.params.caption]
                candidates = row.get(column) if column else None
                if candidates and self.params.repeats > 1:
                    text = candidates[min(int(draw * len(candidates)), len(candidates) - 1)]
                key = f"{row[UID]}_{repeat}" if self.params.repeats > 1 else str(row[UID])
                key = key.replace(".", "_")  # webdataset splits keys at the first dot
                assert tar is not None
                _add(tar, f"{key}.jpg", image)
                _add(tar, f"{key}.txt", (text or "").encode())
                _add(tar, f"{key}.json", json.dumps({**row, "repeat": repeat}, ensure_ascii=False).encode())
                written += 1
        if tar is not None:
            tar.close()
        (out / "sizes.json").write_text(json.dumps({p.name: self._count(p) for p in shards}))
        return {"rows": len(items), "samples": written, "shards": len(shards)}

    def _count(self, path: Path) -> int:
        with tarfile.open(path) as tar:
            return sum(1 for m in tar.getmembers() if m.name.endswith(".jpg"))


class ImageFolderSink(Sink):
    """``images/<uid>.jpg`` plus ``metadata.jsonl`` (``file_name``, ``text`` and metadata) —
    what ``datasets.load_dataset("imagefolder", data_dir=...)`` and diffusers' scripts read."""

    format = "imagefolder"
    description = "HF imagefolder: images/ + metadata.jsonl (file_name, text, ...)"
    requires = ("PIL",)
    extra = "export"
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
        with (out / "metadata.jsonl").open("w", encoding="utf-8") as handle:
            for row, image in samples(self, table):
                name = f"{row[UID]}.jpg".replace("/", "_")
                (images / name).write_bytes(image)
                text = row.pop(self.params.caption)
                record = {"file_name": f"images/{name}", "text": text, **{k: v for k, v in row.items()}}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                rows += 1
        return {"rows": rows}
