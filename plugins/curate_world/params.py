"""Everything that determines a world. Same parameters (seed included) -> byte-identical world."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer

# Bump when the same parameters would produce different files, so cached worlds are regenerated.
# 2: a wrong count never lands on a lookalike of a logo (alttext.write_wrong_attribute).
# 3: web-styled worlds only: a wrong-attribute alt-text truncated before its wrong part is partial
#    (curate_world.cut). Worlds without web styling did not change: they stay version 2, so their
#    ids, ports and cached steps are what they were (WorldParams.version).
WORLD_VERSION = 3
UNSTYLED_WORLD_VERSION = 2


class WorldParams(BaseModel):
    # Validator built on first use: every curate command registers this plugin, few generate a world.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    n: int = Field(5000, ge=1, le=2_000_000, description="image–alt-text rows in world.parquet")
    seed: int = Field(0, ge=0)
    image_size: int = Field(64, ge=16, le=1024, description="side of a singleton image in pixels")
    image_format: Literal["jpeg", "png"] = "jpeg"
    jpeg_quality: int = Field(90, ge=20, le=100)
    fault_rate: float = Field(0.2, ge=0.0, le=1.0, description="share of URLs whose download goes wrong")
    fault_weights: dict[str, float] | None = Field(
        None, description="relative weights of fault kinds; equal if unset"
    )
    noise_rates: dict[str, float] | None = Field(
        None, description="rates of noisy alt-text kinds; faithful gets the rest"
    )
    entity_rate: float = Field(0.3, ge=0.0, le=1.0, description="share of scenes showing an entity's logo")
    entity_mention_rate: float = Field(
        0.85, ge=0.0, le=1.0, description="chance an alt-text names the image's entity"
    )
    dup_fraction: float = Field(
        0.1, ge=0.0, le=0.9, description="share of rows that are near-duplicates of another row"
    )
    max_dup_group_size: int = Field(4, ge=2, le=20)
    val_fraction: float = Field(
        0.05, ge=0.0, le=0.5, description="share of scenes whose rows get split='val'"
    )
    eval_n: int | None = Field(
        None, ge=0, description="rows in eval.parquet; default min(1000, max(50, n // 5))"
    )
    realign_fraction: float = Field(0.2, ge=0.0, le=1.0, description="share of rows with a realigned caption")
    concept_skew: float | None = Field(
        None, gt=0.0, le=5.0,
        description="long tail: the k-th shape, color and entity (vocab order) is drawn with weight 1/k^s; "
        "None: uniform. eval.parquet stays uniform",
    )
    web_style_rate: float = Field(
        0.0, ge=0.0, le=1.0,
        description="share of rows whose alt-text gets web styling (caps, stock framing, file names, SEO, "
        "HTML, emoji, truncation, synonyms, misspellings, a second language, disagreeing alt-texts); "
        "0.5 is the web mix (curate_world.webstyle.WEB_MIX_RATE)",
    )
    web_style_weights: dict[str, float] | None = Field(
        None, description="relative weights of web styles (curate_world.webstyle.STYLES); all 1 if unset"
    )
    scenes: Literal["any", "train", "heldout"] = Field(
        "any",
        description="which part of the scene space the world's images (and eval.parquet) show: 'train' "
        "(the training partition), 'heldout' (the held-out partition, less every scene the shipped world "
        "models saw) or 'any' (the whole space, as worlds made before the partition); "
        "curate_world.partition",
    )

    @field_validator("web_style_weights")
    @classmethod
    def _check_styles(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        # The checks import the world's vocabularies and tables when a world is configured, not
        # when the plugin registers its source (every curate command): ~8 ms.
        from curate_world.webstyle import style_weights

        style_weights(value)
        return value

    @field_validator("noise_rates")
    @classmethod
    def _check_noise(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        from curate_world.alttext import noise_probabilities

        noise_probabilities(value)  # raises ValueError naming the bad key; pydantic adds the field path
        return value

    @field_validator("fault_weights")
    @classmethod
    def _check_faults(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        from curate_world.faults import fault_probabilities

        fault_probabilities(0.5, value)
        return value

    @model_serializer(mode="wrap")
    def _omit_unset_knobs(self, handler):  # type: ignore[no-untyped-def]
        """A knob added after worlds were cached is left out while off, so a default world keeps
        its world.json, its digest (cache directory, stable port) and its source fingerprint."""
        data = handler(self)
        if isinstance(data, dict):
            for knob, off in (("concept_skew", None), ("web_style_rate", 0.0), ("web_style_weights", None),
                              ("scenes", "any")):
                if knob in data and data[knob] == off:
                    del data[knob]
        return data

    @property
    def web_styled(self) -> bool:
        """Whether the world has web styling, and with it the columns of ``tables.WEB_STYLE_SCHEMA``."""
        return self.web_style_rate > 0

    @property
    def eval_rows(self) -> int:
        return self.eval_n if self.eval_n is not None else min(1000, max(50, self.n // 5))

    @property
    def version(self) -> int:
        """The version of the generator's output for these parameters (``WORLD_VERSION`` history)."""
        return WORLD_VERSION if self.web_styled else UNSTYLED_WORLD_VERSION

    def digest(self) -> str:
        """Short stable id of the world these parameters produce (cache directory names)."""
        payload = json.dumps({"version": self.version, **self.model_dump(mode="json")}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]
