"""clip_score counts the texts longer than the model's text context (scored on their start only)
in its summary, and warns once when more than 5 % of a column's were cut."""

from __future__ import annotations

import warnings

import polars as pl
import pytest

from curate.testing import run_step
from curate_clip.cuts import TextCutWarning
from tests.clip.conftest import image_table

# The world CLIP reads 32 tokens (30 besides start and end); its BPE spends 2-3 tokens on a
# Chinese character: 20 of them are ~50 tokens, 5 of them ~13.
LONG = "東京タワーの夜景と赤い丸と青い四角と緑の星が見える写真です"
SHORT = "a red circle"


def scored(small_world, alt_texts: list[str | None], texts: tuple[str, ...] = ("alt_text",)):
    table = image_table(small_world, limit=len(alt_texts)).with_columns(
        pl.Series("alt_text", alt_texts), pl.lit(SHORT).alias("caption"))
    return run_step("clip_score", table, {"batch_size": 3, "store_embeddings": False, "texts": list(texts)},
                    shard_size=4)


def test_texts_past_the_context_are_counted_per_column_and_warned_of_once(small_world):
    alt_texts = [LONG, SHORT, None, LONG + LONG, SHORT, "東京タワー", SHORT, LONG]  # 3 long, 2 shards
    with pytest.warns(TextCutWarning) as caught:
        result = scored(small_world, alt_texts, ("alt_text", "caption"))
    assert result.summary == {"text_context_tokens": 32, "texts": {"alt_text": 7, "caption": 8},
                              "texts_cut": {"alt_text": 3, "caption": 0}}
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "step 'clip_score': 3 of 7 texts of alt_text (43 %)" in message
    assert "32 tokens" in message and "multilingual" in message and "max_length" in message
    assert "score-gated mix" in message


def test_texts_within_the_context_count_zero_and_warn_of_nothing(small_world):
    with warnings.catch_warnings():
        warnings.simplefilter("error", TextCutWarning)
        result = scored(small_world, [SHORT, "東京タワー", None, "two blue squares and a star"])
    assert result.summary == {"text_context_tokens": 32, "texts": {"alt_text": 3},
                              "texts_cut": {"alt_text": 0}}
