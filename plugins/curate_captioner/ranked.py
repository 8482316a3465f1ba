"""Preference pairs for a user's data, where no ground truth says which caption is right: sample
two captions per image from the SFT captioner and let a scorer rank them.

    score = clip × CLIP score(image, caption)            (how well the caption fits the image)
          + entity × share of the alt-text's names the caption keeps
          + length × length fit (1 inside [min_words, max_words], falling off linearly outside)

A name is a capitalised word of the alt-text that is not its first word ("Zorblax", "Tower"), or
any word with a capital inside or a digit ("iPhone", "A380"): what only the alt-text can know.
The higher-scoring caption is chosen; a pair whose scores are within ``margin`` is no preference
and is dropped (null ``chosen``). Pairs are ``textual`` (kind ``ranked``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

NAME = re.compile(r"\b(?:[A-Z][\w'-]*|\w*[a-z][A-Z]\w*|\w*\d\w*)\b")


@dataclass(frozen=True)
class Scorer:
    clip: float = 1.0
    entity: float = 1.0
    length: float = 0.5
    min_words: int = 8
    max_words: int = 60
    margin: float = 0.02


def alt_text_names(alt_text: str) -> set[str]:
    words = NAME.findall(alt_text or "")
    first = re.match(r"\W*(\w[\w'-]*)", alt_text or "")
    head = first.group(1) if first else None
    # The first word is capitalised by grammar, not because it is a name (unless it recurs).
    recurs = words.count(head) > 1 if head is not None else False  # once: counted per word, it was quadratic
    return {w for w in words if w != head or recurs or any(c.isdigit() for c in w)}


def entity_kept(alt_text: str, caption: str) -> float:
    """Share of the alt-text's names the caption keeps (1 when the alt-text has none)."""
    names = alt_text_names(alt_text)
    if not names:
        return 1.0
    words = set(re.findall(r"[\w'-]+", caption or ""))
    return sum(name in words for name in names) / len(names)


def length_fit(caption: str, min_words: int, max_words: int) -> float:
    count = len((caption or "").split())
    if count < min_words:
        return count / min_words
    if count > max_words:
        return max(0.0, 1.0 - (count - max_words) / max_words)
    return 1.0


def scores(alt_texts: Sequence[str], captions: Sequence[str], clip: Sequence[float] | None, scorer: Scorer) -> list[float]:
    return [
        scorer.clip * (clip[i] if clip is not None else 0.0)
        + scorer.entity * entity_kept(alt_texts[i], captions[i])
        + scorer.length * length_fit(captions[i], scorer.min_words, scorer.max_words)
        for i in range(len(captions))
    ]


def rank(first: Sequence[str], second: Sequence[str], first_scores: Sequence[float], second_scores: Sequence[float],
         margin: float) -> list[tuple[str | None, str | None, float | None, float | None]]:
    """(chosen, rejected, chosen score, rejected score) per row; nulls where the two are no preference."""
    out: list[tuple[str | None, str | None, float | None, float | None]] = []
    for a, b, sa, sb in zip(first, second, first_scores, second_scores, strict=True):
        if a == b or abs(sa - sb) < margin:
            out.append((None, None, None, None))
        elif sa > sb:
            out.append((a, b, sa, sb))
        else:
            out.append((b, a, sb, sa))
    return out


def clip_scorer(model: str = "world", checkpoint: str | None = None) -> Callable[[list[Any], list[str]], list[float]]:
    """Cosine of (image, text) under an open_clip model curate_clip can load (default: the world CLIP;
    with ``checkpoint``, an open_clip ``model`` config and its local weights)."""
    from curate_clip.api import load_clip

    import torch

    loaded = load_clip(model="world-clip-tiny" if model == "world" else model, checkpoint=checkpoint, device="cpu")

    def score(images: list[Any], texts: list[str]) -> list[float]:
        out: list[float] = []
        with torch.no_grad():
            for start in range(0, len(images), 128):
                pixels = torch.stack([loaded.preprocess(image) for image in images[start : start + 128]])
                tokens = loaded.tokenizer([t or "" for t in texts[start : start + 128]])
                a = torch.nn.functional.normalize(loaded.model.encode_image(pixels).float(), dim=-1)
                b = torch.nn.functional.normalize(loaded.model.encode_text(tokens).float(), dim=-1)
                out.extend((a * b).sum(dim=-1).tolist())
        return out

    return score


def sample_and_rank(captioner: Any, images: list[Any], alt_texts: list[str], keys: list[int], *, scorer: Scorer,
                    clip: Callable[[list[Any], list[str]], list[float]] | None, temperature: float = 0.7, seed: int = 0,
                    batch_size: int = 64) -> list[tuple[str | None, str | None, float | None, float | None]]:
    """Two captions per image from ``captioner`` (two seeds), ranked by ``scorer``."""
    from curate_captioner.evaluate import caption_rows

    copy_bias = captioner.config.copy_bias
    first, second = (caption_rows(captioner, images, alt_texts, keys, batch_size=batch_size, seed=s, temperature=temperature,
                                  top_p=0.95, copy_bias=copy_bias) for s in (seed, seed + 1))
    clip_first = clip(images, first) if clip is not None and scorer.clip else None
    clip_second = clip(images, second) if clip is not None and scorer.clip else None
    return rank(first, second, scores(alt_texts, first, clip_first, scorer), scores(alt_texts, second, clip_second, scorer),
                scorer.margin)


def table_pairs(table: str | Path, model: str, out_dir: str | Path, *, scorer: Scorer, image_column: str = "image",
                alt_text_column: str = "alt_text", clip_model: str = "world", clip_checkpoint: str | None = None,
                temperature: float = 0.7,
                seed: int = 0) -> pl.DataFrame:
    """Ranked pairs of a user's Parquet table (local image paths + alt-texts) in ``out_dir/pairs.parquet``."""
    import torch

    from curate_captioner.data import open_images
    from curate_captioner.errors import CaptionerError
    from curate_captioner.model import Captioner
    from curate_captioner.pairs import write_pairs

    frame = pl.read_parquet(table)
    missing = [c for c in (image_column, alt_text_column) if c not in frame.columns]
    if missing:
        raise CaptionerError(f"{table} has no column(s) {missing}", f"columns: {', '.join(frame.columns)}")
    opened = open_images(frame[image_column].to_list())
    rows = [i for i, image in enumerate(opened) if image is not None]
    alts = [frame[alt_text_column][i] or "" for i in rows]
    captioner = Captioner.load(model)
    clip = clip_scorer(clip_model, clip_checkpoint) if scorer.clip else None
    with torch.inference_mode():
        ranked = sample_and_rank(captioner, [opened[i] for i in rows], alts, rows, scorer=scorer, clip=clip,
                                 temperature=temperature, seed=seed)
    records = [{"image": str(frame[image_column][i]), "alt_text": alt, "chosen": c, "rejected": r, "dimension": "textual",
                "kind": "ranked", "chosen_score": sc, "rejected_score": sr}
               for i, alt, (c, r, sc, sr) in zip(rows, alts, ranked, strict=True) if c is not None]
    return write_pairs(records, {"chosen_score": pl.Float64, "rejected_score": pl.Float64}, out_dir)
