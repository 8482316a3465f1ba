"""Steps: ``realign`` writes a realigned caption per row; ``train_captioner`` trains one stage on the
upstream table and saves the captioner in the step's artifacts."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import Field, model_validator

from curate import PLACE, Image, Params, Step, StepContext, TableInput
from curate.digests import directory_digest
from curate.schema import Schema
from curate_captioner.config import (ALT_TEXT_SEPARATOR, MAX_NEW_TOKENS, MAX_TRAIN_BATCH, MAX_TRAIN_STEPS, TEMPERATURE,
                                     TOP_P, WORLD_MODEL_NAME, TrainConfig, defaults)
from curate_captioner.cuts import counting_cuts, cut_summary, store_cuts, warn_if_cut
from curate_captioner.rewrite import PromptRewrite

REQUIRES = ("torch", "transformers", "open_clip")
TRAIN = defaults(TrainConfig)  # train_captioner's defaults are a training stage's
CAPTIONER_ARTIFACT = "captioner"
# The trained captioner in the summary: relative to the step's folder (the manifest record's
# ``path``), as metadata_balance records its counts_file: the step writes into a ``.partial``
# folder that the engine renames when the step is done, so the path it wrote to is gone by then.
MODEL_IN_STEP = f"artifacts/{CAPTIONER_ARTIFACT}"


class ImageParams(Params):
    image_column: str = "image"
    images: Literal["ref", "path"] = Field("ref", description="ref: Image struct read from the run's image store; path: local file")
    image_root: str | None = Field(None, description="directory relative paths are resolved against",
                                   json_schema_extra=PLACE)

    def places(self) -> list[tuple[str, str]]:
        """Besides ``image_root``: a captioner directory (``model``, ``init``) and the files read
        from it, unless it is the shipped one; a CLIP scorer's ``local-dir:`` folder and checkpoint."""
        from curate_captioner.modelfiles import READ_FILES

        out = super().places()
        for name in ("model", "init"):
            value = getattr(self, name, WORLD_MODEL_NAME)
            if value != WORLD_MODEL_NAME:
                out += [(name, value)] + [(name, f"{value.rstrip('/')}/{file}") for file in READ_FILES]
        if getattr(self, "clip", 0):
            from curate_clip.api import local_dir_files

            out += [("clip_model", path) for path in local_dir_files(getattr(self, "clip_model", ""))]
        return out

    def image_schema(self) -> Schema:
        return {self.image_column: Image if self.images == "ref" else pl.Utf8}

    def image_values(self, frame: pl.DataFrame) -> pl.Series:
        """The image column of ``frame``, relative paths joined to ``image_root`` (images: path)."""
        image = frame[self.image_column]
        if self.images == "path" and self.image_root:
            root = Path(self.image_root)
            image = pl.Series([v if v is None else str(root / v) for v in image.to_list()])
        return image


def _row_key(uid: str) -> int:
    return int.from_bytes(hashlib.blake2b(uid.encode(), digest_size=8).digest(), "little")


def prompts_of(table: pl.DataFrame, column: str | None) -> list[str]:
    """One prompt per row: the alt-text, or a list of alt-texts joined with '; '."""
    if column is None:
        return [""] * table.height
    values = table[column].to_list()
    if isinstance(table.schema[column], pl.List):
        return [ALT_TEXT_SEPARATOR.join(v for v in (value or []) if v) for value in values]
    return [value or "" for value in values]


def model_problems(model: str) -> list[str]:
    """Plan-time problems with a captioner directory: its configs, sizes and weights' header are
    read (never a tensor, never code); what would fail or blow up at setup fails here instead."""
    from curate_captioner.modelfiles import captioner_problems

    return captioner_problems(model)


def model_digest(model: str) -> str | None:
    """A digest of a captioner directory's files (None when it cannot be found: the plan says why)."""
    from curate_captioner.config import resolve_model_path
    from curate_captioner.errors import CaptionerError

    try:
        path = resolve_model_path(model)
    except CaptionerError:
        return None
    if model_problems(model):  # plan_check says why; a refused file (a sparse terabyte) is never hashed
        return None
    return directory_digest(path)[:16]


class Realign(Step):
    """Rewrite each row's alt-text into a caption of what the image shows (Altogether), keeping what
    only the alt-text knows; ``mode: no_alt_text`` captions from the image alone."""

    name = "realign"
    # 2: images decoded by curate.images.decode_rgb (EXIF orientation followed, transparency on white,
    # 16-bit samples at 8 bits), so a run made before, which saw them sideways, on black or white, is
    # not reused (nor this one by an older curate)
    version = "2"
    description = "realigned captions from image + alt-text with an Altogether-style captioner"
    requires = REQUIRES
    extra = "captioner"
    uses_model = True
    random = True  # sampling: the run seed joins the fingerprint
    reads = {"image": Image, "alt_text": pl.Utf8}
    writes = {"caption_realigned": pl.Utf8, "caption_model": pl.Utf8}

    class Params(ImageParams):
        model: str = Field(WORLD_MODEL_NAME, description="captioner directory, or 'world' for the shipped one")
        mode: Literal["realign", "no_alt_text"] = "realign"
        alt_text_column: str = "alt_text"
        alt_text_list: bool = Field(False, description="the column is a list of an image's alt-texts")
        temperature: float = Field(TEMPERATURE, ge=0.0, le=2.0, description="0 decodes greedily")
        top_p: float = Field(TOP_P, gt=0.0, le=1.0)
        max_new_tokens: int = Field(MAX_NEW_TOKENS, gt=0, le=2048)
        copy_bias: float | None = Field(None, ge=0.0, le=20.0, description="added to the logits of the alt-text's "
                                        "own tokens; default: the model's (captioner.json; world: 1, Altogether: 0)")
        prompt_rewrites: list[PromptRewrite] | None = Field(
            None, description="rewrites of each alt-text, in order, before the captioner reads it: 'file_names' "
            "reads zorblax-tower-logo.jpg as its words, 'fold_shouting' reads ZORBLAX TOWER as Zorblax Tower (the "
            "alt_text column is never changed); [] for none; default: the model's (captioner.json; world: both)")
        guidance: float = Field(1.0, ge=0.0, le=10.0, description="classifier-free guidance on the image (1: off; "
                                "for a captioner trained with image dropout); costs one more decoded row per caption")
        alt_text_guidance: float = Field(1.0, ge=0.0, le=10.0, description="classifier-free guidance on the alt-text (1: off)")
        best_of: int = Field(1, ge=1, le=16, description="sample this many captions per row and keep the one the "
                             "world CLIP (curate_clip) scores highest for the image (1: off); needs temperature > 0; "
                             "costs that many decoding passes")
        batch_size: int = Field(64, gt=0, json_schema_extra={"fingerprint": False})
        device: str = Field("auto", json_schema_extra={"fingerprint": False})
        cuda_graphs: bool = Field(True, description="on CUDA: decode against a static KV cache and replay each "
                                  "token's decoder step as a CUDA graph (same captions, fewer kernel launches)",
                                  json_schema_extra={"fingerprint": False})
        precision: Literal["auto", "fp32", "bf16"] = "auto"

        @model_validator(mode="after")
        def _best_of_samples(self) -> Realign.Params:
            # At validation time, not at the first shard: greedy decoding makes N identical captions.
            if self.best_of > 1 and self.temperature <= 0:
                raise ValueError(f"best_of {self.best_of} needs temperature > 0 (greedy decoding makes "
                                 f"{self.best_of} identical captions): set temperature (default {TEMPERATURE}) or best_of: 1")
            return self

        def fingerprint_dict(self) -> dict[str, Any]:
            """Guidance and best-of off and the model's own prompt rewrites are left out, so specs written before
            them keep their fingerprints (and caches)."""
            data = super().fingerprint_dict()
            for name in ("guidance", "alt_text_guidance", "best_of"):
                if data.get(name) == 1:
                    data.pop(name)
            if data.get("prompt_rewrites", "") is None:
                data.pop("prompt_rewrites")
            return data

    def input_columns(self) -> Schema:
        params = self.params
        columns = params.image_schema()
        if params.mode == "realign":
            columns[params.alt_text_column] = pl.List(pl.Utf8) if params.alt_text_list else pl.Utf8
        return columns

    def plan_check(self, input_schema: Schema) -> list[str]:
        return model_problems(self.params.model)

    def fingerprint_extra(self) -> dict[str, Any]:
        """The captioner's files by content: retrained weights under the same name rerun the step."""
        return {"model_files": model_digest(self.params.model)}

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        """The captioner's max_prompt_tokens, the alt-texts it read and how many of them it cut there
        (:mod:`curate_captioner.cuts`; a warning past 5 %)."""
        summary = cut_summary(ctx.artifacts)
        warn_if_cut(self.label, summary)
        return summary

    def setup(self, ctx: StepContext) -> None:
        import torch

        from curate_captioner.model import Captioner
        from curate_captioner.train import pick_device, use_bf16

        device = pick_device(self.params.device)
        dtype = torch.bfloat16 if use_bf16(self.params.precision, device) else None
        self.captioner = Captioner.load(self.params.model, device=device, dtype=dtype)
        if self.params.prompt_rewrites is not None:
            self.captioner.config = self.captioner.config.model_copy(
                update={"prompt_rewrites": list(self.params.prompt_rewrites)})

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        from curate_captioner.data import open_images
        from curate_captioner.evaluate import caption_rows

        params, captioner = self.params, self.captioner
        prompts = prompts_of(table, params.alt_text_column if params.mode == "realign" else None)
        images = open_images(table[params.image_column].to_list(), params.image_root, ctx.extras.get("store_dir"),
                             ctx.image_folders)
        uids = table["uid"].to_list()
        captions: list[str | None] = [None] * table.height
        readable = [i for i, image in enumerate(images) if image is not None]
        with counting_cuts(captioner) as seen:
            texts = caption_rows(
                captioner, [images[i] for i in readable], [prompts[i] for i in readable],
                [_row_key(uids[i]) for i in readable], batch_size=params.batch_size, seed=ctx.seed,
                temperature=params.temperature, top_p=params.top_p, max_new_tokens=params.max_new_tokens,
                copy_bias=captioner.config.copy_bias if params.copy_bias is None else params.copy_bias,
                guidance=(params.guidance, params.alt_text_guidance if params.mode == "realign" else 1.0),
                best_of=params.best_of, static=None if params.cuda_graphs else False, progress=ctx.advance)
        store_cuts(ctx, captioner, [prompts[i] for i in readable], seen)
        for i, text in zip(readable, texts, strict=True):
            captions[i] = text
        return table.with_columns(
            pl.Series("caption_realigned", captions, dtype=pl.Utf8),
            pl.lit(captioner.name, dtype=pl.Utf8).alias("caption_model"),
        )


class TrainCaptioner(Step):
    """Train one stage of a captioner on the upstream rows (stage 1: alt-texts; stage 2: realigned
    captions) and save it in this step's artifacts (``artifacts/captioner``). Rows pass through."""

    name = "train_captioner"
    # 2: images decoded by curate.images.decode_rgb (see Realign.version)
    version = "2"
    description = "train a realignment captioner (stage 1 on alt-text, stage 2 on realigned captions)"
    requires = REQUIRES
    extra = "captioner"
    scope = "table"
    random = True
    reads = {"image": Image, "alt_text": pl.Utf8}

    class Params(ImageParams):
        init: str = Field(..., description="captioner directory to start from ('world' for the shipped one)")
        stage: Literal[1, 2] = 2
        caption_column: str = "caption"
        group_column: str | None = Field(None, description="stage 1: rows of one image; prompts come from the group")
        steps: int = Field(TRAIN["steps"], gt=0, le=MAX_TRAIN_STEPS)
        batch_size: int = Field(TRAIN["batch_size"], gt=0, le=MAX_TRAIN_BATCH)
        lr: float = Field(TRAIN["lr"], gt=0, allow_inf_nan=False)
        device: str = Field(TRAIN["device"], json_schema_extra={"fingerprint": False})
        precision: Literal["auto", "fp32", "bf16"] = TRAIN["precision"]  # type: ignore[assignment]

    def input_columns(self) -> Schema:
        columns = self.params.image_schema()
        columns["alt_text"] = pl.Utf8
        if self.params.stage == 2:
            columns[self.params.caption_column] = pl.Utf8
        if self.params.group_column:
            columns[self.params.group_column] = pl.Null  # any type: only equality matters
        return columns

    def plan_check(self, input_schema: Schema) -> list[str]:
        return model_problems(self.params.init)

    def process_table(self, table: TableInput, ctx: StepContext):  # type: ignore[no-untyped-def]
        from curate_captioner.model import Captioner
        from curate_captioner.train import train

        params = self.params
        frame = table.scan().collect()
        image = params.image_values(frame)
        columns: dict[str, Any] = {"image": image, "alt_text": frame["alt_text"]}
        if params.stage == 2:
            columns["caption"] = frame[params.caption_column]
        if params.group_column:
            columns["group"] = frame[params.group_column]
        training = pl.DataFrame(columns).filter(pl.col("image").is_not_null())
        config = TrainConfig(stage=params.stage, steps=params.steps, batch_size=params.batch_size, lr=params.lr,
                             seed=ctx.seed, device=params.device, precision=params.precision)
        self.result = train(Captioner.load(params.init), training, config, ctx.artifacts / CAPTIONER_ARTIFACT,
                            log=lambda _: None, within=ctx.image_folders, store_dir=ctx.extras.get("store_dir"))
        self.result["model"] = MODEL_IN_STEP
        yield frame

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        return dict(getattr(self, "result", {}))


class CaptionPairs(Step):
    """Preference pairs for a user's data: two captions sampled per row from an SFT captioner, ranked
    by a scorer (CLIP score, names kept from the alt-text, length; :mod:`curate_captioner.ranked`).
    Rows whose two captions are no preference (score gap below ``margin``) get null ``chosen``."""

    name = "caption_pairs"
    # 2: images decoded by curate.images.decode_rgb (see Realign.version)
    version = "2"
    description = "preference pairs (chosen/rejected captions) ranked by CLIP score, names kept and length"
    requires = REQUIRES
    extra = "captioner"
    uses_model = True
    random = True
    reads = {"image": Image, "alt_text": pl.Utf8}
    writes = {"chosen": pl.Utf8, "rejected": pl.Utf8, "dimension": pl.Utf8, "chosen_score": pl.Float64,
              "rejected_score": pl.Float64}

    class Params(ImageParams):
        model: str = Field(WORLD_MODEL_NAME, description="the SFT captioner that samples the candidates")
        alt_text_column: str = "alt_text"
        temperature: float = Field(0.7, gt=0.0, le=2.0)
        clip: float = Field(1.0, ge=0, description="weight of the CLIP score")
        entity: float = Field(1.0, ge=0, description="weight of the share of the alt-text's names kept")
        length: float = Field(0.5, ge=0, description="weight of the length fit")
        margin: float = Field(0.02, ge=0, description="a smaller score gap is no preference")
        clip_model: str = Field("world", description="open_clip config of the CLIP scorer ('world': the world CLIP)")
        clip_checkpoint: str | None = Field(None, description="the CLIP scorer's local weights (.safetensors)",
                                            json_schema_extra=PLACE)
        batch_size: int = Field(64, gt=0, json_schema_extra={"fingerprint": False})

    def input_columns(self) -> Schema:
        columns = self.params.image_schema()
        columns[self.params.alt_text_column] = pl.Utf8
        return columns

    def plan_check(self, input_schema: Schema) -> list[str]:
        return model_problems(self.params.model)

    def fingerprint_extra(self) -> dict[str, Any]:
        return {"model_files": model_digest(self.params.model)}

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        """The captioner's max_prompt_tokens, the alt-texts it read and how many of them it cut there
        (:mod:`curate_captioner.cuts`; a warning past 5 %)."""
        summary = cut_summary(ctx.artifacts)
        warn_if_cut(self.label, summary)
        return summary

    def setup(self, ctx: StepContext) -> None:
        from curate_captioner.model import Captioner
        from curate_captioner.ranked import clip_scorer

        self.captioner = Captioner.load(self.params.model)
        self.clip = clip_scorer(self.params.clip_model, self.params.clip_checkpoint) if self.params.clip else None

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        import torch

        from curate_captioner.data import open_images
        from curate_captioner.ranked import Scorer, sample_and_rank

        params = self.params
        images = open_images(table[params.image_column].to_list(), params.image_root, ctx.extras.get("store_dir"),
                             ctx.image_folders)
        readable = [i for i, image in enumerate(images) if image is not None]
        alts = prompts_of(table, params.alt_text_column)
        uids = table["uid"].to_list()
        out: list[tuple[Any, Any, Any, Any]] = [(None, None, None, None)] * table.height
        scorer = Scorer(clip=params.clip, entity=params.entity, length=params.length, margin=params.margin)
        with torch.inference_mode(), counting_cuts(self.captioner) as seen:
            ranked = sample_and_rank(self.captioner, [images[i] for i in readable], [alts[i] for i in readable],
                                     [_row_key(uids[i]) for i in readable], scorer=scorer, clip=self.clip,
                                     temperature=params.temperature, seed=ctx.seed, batch_size=params.batch_size)
        store_cuts(ctx, self.captioner, [alts[i] for i in readable], seen)
        for i, result in zip(readable, ranked, strict=True):
            out[i] = result
        ctx.advance(table.height)
        chosen, rejected, chosen_score, rejected_score = (list(column) for column in zip(*out, strict=True)) if out else ([], [], [], [])
        return table.with_columns(
            pl.Series("chosen", chosen, dtype=pl.Utf8), pl.Series("rejected", rejected, dtype=pl.Utf8),
            pl.Series("dimension", ["textual" if c is not None else None for c in chosen], dtype=pl.Utf8),
            pl.Series("chosen_score", chosen_score, dtype=pl.Float64),
            pl.Series("rejected_score", rejected_score, dtype=pl.Float64),
        )


class PreferenceCaptioner(Step):
    """The preference stage (DPO / MCM-DPO) on the upstream pair rows, from a stage-2 captioner that
    is also the frozen reference; the tuned captioner goes to ``artifacts/captioner``. Rows without
    a pair (null ``chosen``) are skipped; rows pass through."""

    name = "preference_captioner"
    # 2: images decoded by curate.images.decode_rgb (see Realign.version)
    version = "2"
    description = "preference-tune a captioner (DPO / MCM-DPO) on chosen/rejected caption pairs"
    requires = REQUIRES
    extra = "captioner"
    scope = "table"
    random = True
    reads = {"image": Image, "alt_text": pl.Utf8, "chosen": pl.Utf8, "rejected": pl.Utf8, "dimension": pl.Utf8}

    class Params(ImageParams):
        init: str = Field(..., description="the stage-2 captioner ('world' for the shipped one)")
        loss: Literal["mcm_dpo", "dpo"] = "mcm_dpo"
        weights: dict[str, float] = Field(default_factory=lambda: {"textual": 1.0, "visual": 1.0, "cross_modal": 1.0})
        beta: float = Field(0.1, gt=0)
        length_normalize: bool = False
        sft_weight: float = Field(1.0, ge=0)
        steps: int = Field(300, gt=0)
        batch_size: int = Field(32, gt=0)
        lr: float = Field(1e-5, gt=0)
        device: str = Field("auto", json_schema_extra={"fingerprint": False})

    def input_columns(self) -> Schema:
        columns = self.params.image_schema()
        columns.update({"alt_text": pl.Utf8, "chosen": pl.Utf8, "rejected": pl.Utf8, "dimension": pl.Utf8})
        return columns

    def plan_check(self, input_schema: Schema) -> list[str]:
        return model_problems(self.params.init)

    def fingerprint_extra(self) -> dict[str, Any]:
        return {"model_files": model_digest(self.params.init)}

    def process_table(self, table: TableInput, ctx: StepContext):  # type: ignore[no-untyped-def]
        from curate_captioner.dpo import PreferenceConfig, train_preference
        from curate_captioner.model import Captioner

        params = self.params
        frame = table.scan().collect()
        image = params.image_values(frame)
        optional = {c: frame[c] if c in frame.columns else pl.Series([None] * frame.height, dtype=pl.Utf8)
                    for c in ("rejected_image", "rejected_alt_text")}
        pairs = pl.DataFrame({"image": image, "alt_text": frame["alt_text"].fill_null(""), "chosen": frame["chosen"],
                              "rejected": frame["rejected"], "dimension": frame["dimension"], **optional})
        pairs = pairs.filter(pl.col("image").is_not_null() & pl.col("chosen").is_not_null() & pl.col("rejected").is_not_null())
        if params.loss == "mcm_dpo":
            pairs = pairs.filter(pl.col("dimension").is_in([d for d, w in params.weights.items() if w > 0]))
        config = PreferenceConfig(loss=params.loss, beta=params.beta, weights=params.weights,
                                  length_normalize=params.length_normalize, sft_weight=params.sft_weight,
                                  steps=params.steps, batch_size=params.batch_size, lr=params.lr, seed=ctx.seed,
                                  device=params.device)
        self.result = train_preference(Captioner.load(params.init), pairs, config, ctx.artifacts / CAPTIONER_ARTIFACT,
                                       log=lambda _: None, within=ctx.image_folders,
                                       store_dir=ctx.extras.get("store_dir"))
        self.result["model"] = MODEL_IN_STEP
        yield frame

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        return dict(getattr(self, "result", {}))
