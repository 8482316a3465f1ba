"""``clip_score``: cosine similarity between each row's image and its text(s), with open_clip.

Embeddings (L2-normalized, float16) go to the step's EmbeddingStore (``image``, ``text_<column>``)
so dedup and mixing reuse them instead of recomputing. The step's summary counts the texts longer
than the model's text context, which it scores on their start only (:mod:`curate_clip.cuts`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import polars as pl
from pydantic import Discriminator, Field, Tag

from curate.digests import file_digest
from curate.embeddings import EmbeddingStore
from curate.images import ImageFolders
from curate.params import PLACE, Params
from curate.schema import UID, Image, Schema
from curate.shardfacts import write_shard_facts
from curate.step import Step, StepContext
from curate_clip.checkpoints import local_dir_files, local_dir_weights, not_regular_file
from curate_clip.cuts import cut_summary, shard_facts, warn_if_cut
from curate_clip.edits import EditVocabulary
from curate_clip.models import WORLD_CHECKPOINT, WORLD_MODEL, check_model
from curate_clip.text_tower import TextTower

NOT_OUTPUT = {"fingerprint": False}
EDIT_ROWS = 512  # rows whose edits are encoded together (a world alt-text has 27-34 edits on average)


def score_column(text_column: str) -> str:
    """``clip_score`` for alt-text, ``clip_score_<column>`` for any other text column."""
    return "clip_score" if text_column == "alt_text" else f"clip_score_{text_column}"


def edit_columns(text_column: str) -> tuple[str, str]:
    """With ``edits``: the margin over the best minimal edit, and the score with it added
    (``clip_edit_margin``, ``clip_edit_score``; ``_<column>`` after each for other text columns)."""
    suffix = "" if text_column == "alt_text" else f"_{text_column}"
    return f"clip_edit_margin{suffix}", f"clip_edit_score{suffix}"


LOCAL_DIR = "local-dir:"
LOCAL_DIR_CONFIG = "open_clip_config.json"


def weights_digest(model: str, checkpoint: str | None) -> str | None:
    """What the scores depend on besides the params: the weights file, or for an open_clip
    ``local-dir:`` folder its config and the weights file open_clip loads from it (a model
    re-trained into the same folder must not reuse cached scores). None where there is no such
    regular file: plan_check names the problem, and a FIFO or /dev/zero is never read."""
    if checkpoint is None and model.startswith(LOCAL_DIR):
        folder = Path(model[len(LOCAL_DIR):]).expanduser()
        files = [folder / LOCAL_DIR_CONFIG, local_dir_weights(model)[0]]
        files = [path for path in files if path is not None and not_regular_file(path) is None]
        return "+".join(file_digest(path)[:16] for path in files) or None
    path = Path(checkpoint).expanduser() if checkpoint else (WORLD_CHECKPOINT if model == WORLD_MODEL else None)
    if path is None or not_regular_file(path) is not None:
        return None
    return file_digest(path)[:16]


class ClipScoreParams(Params):
    model: str = Field(WORLD_MODEL, description="open_clip architecture (default: the shipped world CLIP)")
    pretrained: str | None = Field(None, description="open_clip pretrained tag (downloads: refused offline)")
    checkpoint: str | None = Field(None, description="local weights: .safetensors, or a state dict .pt",
                                   json_schema_extra=PLACE)
    texts: list[str] = Field(["alt_text"], min_length=1, description="text columns to score against the image")
    image_column: str = "image"
    store_embeddings: bool = True
    batch_size: int = Field(256, gt=0, le=65536, json_schema_extra=NOT_OUTPUT)
    workers: int = Field(0, ge=0, le=64, description="DataLoader processes decoding images",
                         json_schema_extra=NOT_OUTPUT)
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1…", json_schema_extra=NOT_OUTPUT)
    decode: Literal["auto", "loader", "device", "workers"] = Field(
        "auto", description="where JPEGs are decoded and resized: loader (PIL in the DataLoader workers), device "
        "(batched on the model's device: nvjpeg on CUDA; workers only read bytes; other formats via PIL), workers "
        "(libjpeg-turbo in the DataLoader workers, resized and cropped on the model's device), auto "
        "(device on CUDA); scores agree within a few 1e-3", json_schema_extra=NOT_OUTPUT)
    precision: Literal["autocast", "bf16"] = Field(
        "autocast", description="on CUDA: autocast (float32 weights, bf16 matmuls) or bf16 (weights cast to bf16: "
        "less memory traffic, faster at large models; scores agree within ~1e-2)", json_schema_extra=NOT_OUTPUT)
    compile: bool = Field(False, description="torch.compile the image tower (CUDA; pays a compile per shape)",
                          json_schema_extra=NOT_OUTPUT)
    edits: Annotated[Annotated[str, Tag("name")] | Annotated[EditVocabulary, Tag("inline")],
                     Discriminator(lambda value: "name" if isinstance(value, str) else "inline")] | None = Field(
        None, description="also score each text against its minimal edits (one colour, shape or count changed): "
        "a vocabulary's name (world, or one a plugin adds) or one written inline; adds clip_edit_margin (the "
        "text's score minus its best edit's) and clip_edit_score (clip_score + edit_weight x margin)")
    edit_weight: float = Field(6.0, ge=0, le=1000, description="weight of the margin in clip_edit_score")
    edit_pooling: Literal["max", "softmax"] = Field(
        "max", description="how a text's edits make its margin: max (the text's score minus its best edit's) or "
        "softmax (-T log(1 + sum of exp((edit - text) / T)) over its edits, T = edit_temperature: T times the "
        "log-probability that the text beats every edit; never above 0, near min(0, max's margin) as T -> 0, "
        "and lower the more edits come close)")
    edit_temperature: float = Field(0.02, ge=0.001, le=1, description="T of edit_pooling: softmax (0.001 to 1)")
    max_edits: int = Field(64, gt=0, le=4096, description="at most this many edits of a text (in text order)")

    def places(self) -> list[tuple[str, str]]:
        return [("model", path) for path in local_dir_files(self.model)] + super().places()


def split_preprocess(preprocess: Any) -> tuple[Any, Any] | None:
    """open_clip's transform as (what runs in the loader, the Normalize that runs on the device).

    The loader then hands over uint8 pixels: a quarter of float32's bytes through the workers'
    shared memory and the host-to-device copy, which is what bounds a GPU at small models. The
    split keeps the arithmetic: to-tensor is a division by 255 and Normalize a subtract and a
    divide, the same float32 operations on either side. None when the transform does not end in
    to-tensor + Normalize (a custom one): then it all runs in the loader, as before."""
    from torchvision.transforms import Compose, Normalize

    steps = list(getattr(preprocess, "transforms", None) or [])
    if len(steps) < 2 or not isinstance(steps[-1], Normalize):
        return None
    if type(steps[-2]).__name__ not in ("ToTensor", "MaybeToTensor"):
        return None
    return Compose(steps[:-2]), steps[-1]


class _Images:
    """A map-style dataset: row index → preprocessed image tensor (zeros where there is none).

    With ``as_uint8`` the tensor is the image's pixels before to-tensor/Normalize (see
    :func:`split_preprocess`). ``within``: the only folders images are read from (``ctx.image_folders``
    of an untrusted spec); one outside is a row without an image, as a missing one is, and is not read."""

    def __init__(self, refs: list[Any], store_dir: str | None, preprocess: Any, size: int, as_uint8: bool = False,
                 within: ImageFolders | None = None):
        self.refs, self.store_dir, self.preprocess, self.size = refs, store_dir, preprocess, size
        self.as_uint8, self.within = as_uint8, within

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int) -> tuple[Any, bool]:
        import torch

        from curate.images import ImageNotFound, decode_rgb, read_image_bytes

        ref = self.refs[index]
        image = None
        if ref is not None:
            try:
                data = read_image_bytes(ref, self.store_dir, within=self.within)
            except (ImageNotFound, OSError, ValueError):
                data = None
            image = decode_rgb(data) if data else None  # as every step sees it; None: not an image
        if image is None:
            dtype = torch.uint8 if self.as_uint8 else torch.float32
            return torch.zeros(3, self.size, self.size, dtype=dtype), False
        pixels = self.preprocess(image)
        return (uint8_pixels(pixels) if self.as_uint8 else pixels), True


def uint8_pixels(image: Any) -> Any:
    """An RGB PIL image as the (3, H, W) uint8 tensor to-tensor would have divided by 255."""
    import torch

    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)


class ClipScore(Step):
    name = "clip_score"
    # 2: images decoded by curate.images.decode_rgb (EXIF orientation followed, transparency on white,
    # 16-bit samples at 8 bits), so a run made before, which saw them sideways, on black or white, is
    # not reused (nor this one by an older curate)
    version = "2"
    description = "CLIP image–text cosine score per text column, embeddings stored once per uid"
    requires = ("torch", "open_clip")
    extra = "clip"
    uses_model = True
    Params = ClipScoreParams
    vocabulary: EditVocabulary | None = None  # set up from params.edits

    def input_columns(self) -> Schema:
        columns: Schema = {UID: pl.Utf8, self.params.image_column: Image}
        columns.update({c: pl.Utf8 for c in self.params.texts})
        return columns

    def output_columns(self) -> Schema:
        columns: Schema = {score_column(c): pl.Float32 for c in self.params.texts}
        if self.params.edits is not None:
            columns.update({name: pl.Float32 for c in self.params.texts for name in edit_columns(c)})
        return columns

    def plan_check(self, input_schema: Schema) -> list[str]:
        problems = check_model(self.params.model, self.params.pretrained, self.params.checkpoint, self.untrusted)
        if isinstance(self.params.edits, str):
            from curate_clip.edits import vocabulary_problem

            problem = vocabulary_problem(self.params.edits)
            if problem is not None:
                problems.append(problem)
        return problems

    def fingerprint_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"weights": weights_digest(self.params.model, self.params.checkpoint)}
        if isinstance(self.params.edits, str):  # a named vocabulary: what it holds now
            from curate_clip.edits import available_vocabularies

            extra["vocabulary"] = available_vocabularies().get(self.params.edits)  # unknown: plan_check says so
        if self.params.edits is not None:
            extra["margins"] = "reading"  # margins of the text as read (2026-12-06); before, as written
        return extra

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        """The model's text context in tokens, each text column's texts and how many of them were
        longer and scored on their start only (:mod:`curate_clip.cuts`; a warning past 5 %)."""
        summary = cut_summary(ctx.artifacts)
        warn_if_cut(self.label, summary)
        return summary

    def setup(self, ctx: StepContext) -> None:
        from curate_clip.edits import resolve_vocabulary
        from curate_clip.models import load_clip

        self.clip = load_clip(self.params.model, self.params.pretrained, self.params.checkpoint, self.params.device)
        self.vocabulary = resolve_vocabulary(self.params.edits) if self.params.edits is not None else None
        self.prepare_model()

    def prepare_model(self) -> None:
        """The loaded model as the params want it run: bf16 weights, a compiled image tower."""
        self._dtype = None
        if self.params.precision == "bf16" and self.clip.device.startswith("cuda"):
            import torch

            self.clip.model.to(torch.bfloat16)
            self._dtype = torch.bfloat16
        self._encode_image = self.clip.model.encode_image
        self._text_tower = TextTower(self.clip.model)
        self._pad_to = 0
        if self.params.compile and self.clip.device.startswith("cuda"):
            import torch

            self._encode_image = torch.compile(self.clip.model.encode_image, dynamic=False)
            self._pad_to = self.params.batch_size  # a shard's last, smaller batch would compile again

    def _image_embeddings(self, refs: list[Any], ctx: StepContext) -> tuple[np.ndarray, np.ndarray]:
        images, present, _, _ = self._embeddings(refs, {}, ctx)
        return images, present

    def _embeddings(self, refs: list[Any], texts: dict[str, list[str | None]],
                    ctx: StepContext) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, int]]:
        """Image embeddings, which rows have an image, each text column's embeddings and how many of
        its texts the tokenizer cut (at the context), in one pass: the DataLoader workers read (and
        decode) a batch's images and tokenize its texts, the main process runs both towers on the
        batch. The embeddings stay on the device until the shard is done: no host sync per batch, so
        the next batch's decode and forward are queued while this one runs."""
        import torch
        from torch.utils.data import DataLoader

        from curate_clip import device_decode

        size = self.clip.model.visual.image_size
        size = int(size[0] if isinstance(size, (tuple, list)) else size)
        split = split_preprocess(self.clip.preprocess)
        loader_part, normalize = split if split is not None else (self.clip.preprocess, None)
        transform = device_decode.device_transform(loader_part) if split is not None else None
        decode = device_decode.resolve_decode(self.params.decode, self.clip.device, transform)
        store_dir = ctx.extras.get("store_dir")
        cuda = self.clip.device.startswith("cuda")
        workers = self.params.workers
        columns = list(texts)
        if decode in ("device", "workers"):
            dataset: Any = device_decode.EncodedImages(refs, store_dir, loader_part, within=ctx.image_folders,
                                                       decode_here=decode == "workers")
            collate: Any = device_decode.collate
        else:
            dataset = _Images(refs, store_dir, loader_part, size, as_uint8=split is not None,
                              within=ctx.image_folders)
            collate = None
        loader = DataLoader(_WithTexts(dataset, [texts[c] for c in columns]),
                            collate_fn=_TokenCollate(collate, self.clip.tokenizer, len(columns)),
                            batch_size=self.params.batch_size, num_workers=workers, shuffle=False,
                            # decode: device hands decode_jpeg encoded bytes it reads itself: nothing to pin
                            pin_memory=cuda and decode != "device", persistent_workers=False,
                            prefetch_factor=4 if workers else None)
        vectors: list[Any] = []
        text_vectors: list[list[Any]] = [[] for _ in columns]
        present = []
        cut = dict.fromkeys(columns, 0)
        for batch, tokens, batch_cut in loader:
            for column, count in zip(columns, batch_cut, strict=True):
                cut[column] += count
            if decode in ("device", "workers"):
                pixels, ok = device_decode.decode_batch(batch, transform, loader_part, size, self.clip.device)
            else:
                pixels, ok = batch[0].to(self.clip.device, non_blocking=cuda), batch[1].numpy()
            if normalize is not None:
                pixels = normalize(pixels.float().div_(255))
            if self._dtype is not None:
                pixels = pixels.to(self._dtype)
            rows = pixels.shape[0]
            if self._pad_to and rows < self._pad_to:  # a compiled tower: one shape, no recompile
                pixels = torch.cat([pixels, pixels.new_zeros((self._pad_to - rows, *pixels.shape[1:]))])
            with torch.inference_mode(), self._autocast():
                features = self._encode_image(pixels)[:rows]
                vectors.append(torch.nn.functional.normalize(features.float(), dim=-1))
                for column, ids in enumerate(tokens):
                    text_vectors[column].append(self._text_vectors(ids))
            present.append(ok)
            ctx.advance(len(ok))
        dim = self.clip.model.text_projection.shape[-1] if hasattr(self.clip.model, "text_projection") else 0
        if not vectors:
            empty = np.zeros((0, dim), np.float32)
            return empty, np.zeros(0, bool), {c: empty for c in columns}, cut
        images = torch.cat(vectors).cpu().numpy()
        return (images, np.concatenate(present),
                {c: torch.cat(text_vectors[i]).cpu().numpy() for i, c in enumerate(columns)}, cut)

    def _autocast(self) -> Any:
        import contextlib

        import torch

        if self.clip.device.startswith("cuda") and self._dtype is None:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        refs = table[self.params.image_column].to_list()
        values_of = {c: table[c].to_list() for c in self.params.texts}
        images, present, texts_of, cut = self._embeddings(refs, values_of, ctx)
        counted = {column: sum(value is not None for value in values) for column, values in values_of.items()}
        context = getattr(self.clip.tokenizer, "context_length", None)
        write_shard_facts(ctx, shard_facts(context, counted, cut))
        shard = ctx.shard or 0
        uids = table[UID]
        if self.params.store_embeddings and images.size:
            store = EmbeddingStore(ctx.artifacts, "image")
            if not store.exists():
                store.write_meta(images.shape[1], self.clip.name)
            store.write_shard(shard, uids.filter(pl.Series(present)), images[present])
        columns = []
        for text_column in self.params.texts:
            values = values_of[text_column]
            texts = texts_of[text_column] if values else np.zeros_like(images)
            scores = (images * texts).sum(axis=1) if len(values) else np.zeros(0, np.float32)
            valid = present & np.array([v is not None for v in values], dtype=bool)
            columns.append(pl.Series(score_column(text_column), np.where(valid, scores, np.nan), dtype=pl.Float32)
                           .fill_nan(None))
            if self.vocabulary is not None:
                margins = self._edit_margins(values, images, np.where(valid, scores, np.nan))
                margin_name, score_name = edit_columns(text_column)
                edited = np.where(np.isnan(margins), 0.0, margins) * self.params.edit_weight
                columns.append(pl.Series(margin_name, margins, dtype=pl.Float32).fill_nan(None))
                columns.append(pl.Series(score_name, np.where(valid, scores + edited, np.nan), dtype=pl.Float32)
                               .fill_nan(None))
            if self.params.store_embeddings and texts.size:
                store = EmbeddingStore(ctx.artifacts, f"text_{text_column}")
                if not store.exists():
                    store.write_meta(texts.shape[1], self.clip.name)
                keep = np.array([v is not None for v in values], dtype=bool)
                store.write_shard(shard, uids.filter(pl.Series(keep)), texts[keep])
        return table.with_columns(columns)

    def _edit_margins(self, values: list[str | None], images: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Each row's score minus the best score of a minimal edit of its text against its image
        (NaN where the row has no score or its text no edit); where the vocabulary reads the text
        otherwise than it is written (synonyms, another language's words), the reading's score and
        its edits (:func:`curate_clip.edits.reading`). The edits go through the same text
        tower as the texts; rows are taken EDIT_ROWS at a time, each distinct edit text of them
        encoded once. So that memory stays bounded whatever the shard size and the texts, a text
        is edited as far as the tokenizer reads it (MAX_TEXT_CHARS), and an edit is kept as its
        token ids and a digest, not as its text: one hostile row made max_edits copies of itself."""
        import torch

        from curate_clip.edits import minimal_edits, reading
        from curate_clip.tokens import MAX_TEXT_CHARS

        margins = np.full(len(values), np.nan, dtype=np.float64)
        own = scores.astype(np.float64)  # the text's score, or its reading's where the vocabulary reads it otherwise
        for start in range(0, len(values), EDIT_ROWS):
            rows: list[int] = []
            which: list[int] = []
            read_rows: list[int] = []  # rows whose text the vocabulary reads otherwise than it is written
            read_which: list[int] = []
            index_of: dict[bytes, int] = {}
            ids = []

            def index(key: bytes, text: str) -> int:
                if key not in index_of:  # tokenized alone as in a batch: the same ids
                    index_of[key] = len(index_of)
                    ids.append(self.clip.tokenizer([text]).to(torch.int32))
                return index_of[key]

            for row in range(start, min(start + EDIT_ROWS, len(values))):
                text = values[row]
                if text is None or np.isnan(scores[row]):
                    continue
                text = text[:MAX_TEXT_CHARS]
                read = reading(text, self.vocabulary)
                edits = {_digest(edit.text): edit.text
                         for edit in minimal_edits(read, self.vocabulary, self.params.max_edits)}
                if read != text and edits:
                    read_rows.append(row)
                    read_which.append(index(_digest(read), read))
                new = [edit for key, edit in edits.items() if key not in index_of]
                if new:
                    for key, edit in edits.items():
                        if key not in index_of:
                            index_of[key] = len(index_of)
                    ids.append(self.clip.tokenizer(new).to(torch.int32))
                for key in edits:
                    rows.append(row)
                    which.append(index_of[key])
            if not rows:
                continue
            vectors = self._encode_ids(torch.cat(ids).long())
            edit_scores = (vectors[which] * images[rows]).sum(axis=1)
            if read_rows:  # the reading's score in place of the text's (these rows have edits)
                own[read_rows] = (vectors[read_which] * images[read_rows]).sum(axis=1)
            block = slice(start, start + EDIT_ROWS)
            margins[block] = pooled_margins(np.array(rows) - start, edit_scores, own[block], self.params.edit_pooling,
                                            self.params.edit_temperature)
        return margins

    def _encode_ids(self, ids: Any) -> np.ndarray:
        import torch

        out = []
        for start in range(0, len(ids), self.params.batch_size):
            with torch.inference_mode(), self._autocast():
                out.append(self._text_vectors(ids[start:start + self.params.batch_size]))
        return torch.cat(out).cpu().numpy()

    def _text_vectors(self, ids: Any) -> Any:
        """Token ids → L2-normalized float32 text embeddings on the device (inside the caller's
        inference mode and autocast): the one text path of the texts and of their edits, each
        text run on its own tokens, not its padding (:mod:`curate_clip.text_tower`)."""
        import torch

        cuda = self.clip.device.startswith("cuda")
        encoded = self._text_tower(ids.to(self.clip.device, non_blocking=cuda))
        return torch.nn.functional.normalize(encoded.float(), dim=-1)


def pooled_margins(rows: np.ndarray, edit_scores: np.ndarray, own: np.ndarray, pooling: str,
                   temperature: float) -> np.ndarray:
    """Each row's margin over its edits: ``rows[i]`` is the row (an index into ``own``, the rows'
    own scores) whose edit scored ``edit_scores[i]``; NaN for a row with no edit. ``max``: own
    minus the best edit. ``softmax``: ``-T log(1 + sum exp((edit - own) / T))``, computed stably
    (the largest exponent taken out first)."""
    margins = np.full(len(own), np.nan, dtype=np.float64)
    best = np.full(len(own), -np.inf)
    np.maximum.at(best, rows, edit_scores)
    has = np.isfinite(best)
    if pooling == "max":
        margins[has] = own[has] - best[has]
        return margins
    z = (edit_scores - own[rows]) / temperature
    top = np.maximum((best - own) / temperature, 0.0)  # the largest exponent of each row, the text's 0 included
    total = np.zeros(len(own))
    np.add.at(total, rows, np.exp(z - top[rows]))
    margins[has] = -temperature * (top[has] + np.log(total[has] + np.exp(-top[has])))
    return margins


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class _WithTexts:
    """A dataset's items with the row's texts (one per text column) beside them."""

    def __init__(self, images: Any, texts: list[list[str | None]]):
        self.images, self.texts = images, texts

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, tuple[str, ...]]:
        return self.images[index], tuple(column[index] or "" for column in self.texts)


class _TokenCollate:
    """Collates a batch of :class:`_WithTexts` items in the DataLoader worker: the images with
    ``collate`` (None: torch's default), each text column tokenized in one tokenizer call, and how
    many of each column's texts the tokenizer cut (:meth:`curate_clip.tokens.BoundedTokenizer.tokenize`;
    0 for a tokenizer that cannot say). The tokenizer (ftfy, regex, BPE in Python) then runs in the
    workers, in parallel and overlapped with the towers, instead of in the main process after the images."""

    def __init__(self, collate: Any, tokenizer: Any, columns: int):
        self.collate, self.tokenizer, self.columns = collate, tokenizer, columns

    def __call__(self, items: list[tuple[Any, tuple[str, ...]]]) -> tuple[Any, list[Any], list[int]]:
        from torch.utils.data import default_collate

        images = [image for image, _ in items]
        batch = (self.collate or default_collate)(images)
        tokenize = getattr(self.tokenizer, "tokenize", None)
        tokens, cut = [], []
        for column in range(self.columns):
            texts = [texts[column] for _, texts in items]
            if tokenize is None:
                ids, flags = self.tokenizer(texts), []
            else:
                ids, flags = tokenize(texts)
            tokens.append(ids)
            cut.append(sum(flags))
        return batch, tokens, cut
