"""How many texts ``clip_score`` cut at the model's text context, in its manifest facts.

A CLIP reads a text's first ``context - 2`` tokens (besides its start and end tokens) and nothing
after them. An English alt-text of a few hundred characters fits in 77 tokens; CLIP's BPE spends 2-3
tokens on a character of most non-Latin scripts, so a 77-token context reads ~25-30 Chinese or Thai
characters and the world CLIP's 32 tokens ~10. The tokenizer says which texts it cut
(:meth:`curate_clip.tokens.BoundedTokenizer.tokenize`); each shard stores its counts
(:mod:`curate.shardfacts`), the step's summary adds them up, and past
:data:`curate.shardfacts.CUT_SHARE` of a text column a :class:`TextCutWarning` says so once.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from curate.shardfacts import cut_too_often, largest, read_shard_facts, summed


class TextCutWarning(UserWarning):
    """A step's model read only the start of many of its texts (cut at its token context)."""


def shard_facts(context: int | None, texts: dict[str, int], cut: dict[str, int]) -> dict[str, Any]:
    """One shard's facts: the text context in tokens, the texts (not null) of each column, and how
    many of them the model did not read whole."""
    return {"text_context_tokens": context, "texts": texts, "texts_cut": cut}


def cut_summary(artifacts: Path) -> dict[str, Any]:
    """The step's facts added up over its shards ({} when no shard stored any)."""
    facts = read_shard_facts(artifacts)
    if not facts:
        return {}
    texts = summed(facts, "texts")
    cut = summed(facts, "texts_cut")
    return {"text_context_tokens": largest(facts, "text_context_tokens"), "texts": texts,
            "texts_cut": {column: cut.get(column, 0) for column in texts}}


def warn_if_cut(label: str, summary: dict[str, Any]) -> None:
    """A :class:`TextCutWarning` when more than :data:`curate.shardfacts.CUT_SHARE` of a column's texts
    were cut."""
    texts, cut = summary.get("texts") or {}, summary.get("texts_cut") or {}
    over = [(column, cut[column], total) for column, total in texts.items()
            if cut_too_often(cut.get(column, 0), total)]
    if not over:
        return
    context = summary.get("text_context_tokens")
    counts = "; ".join(f"{n:,} of {total:,} texts of {column} ({100 * n / total:.0f} %)"
                       for column, n, total in over)
    warnings.warn(
        f"step '{label}': {counts} are longer than the model's text context"
        f"{f' of {context} tokens' if context else ''} and were scored on their start only. CLIP's "
        "BPE spends 2-3 tokens on a character of most non-Latin scripts (a 77-token context reads "
        "~25-30 Chinese characters), and long texts (detailed captions) run past it in any script. "
        "Use a model with a longer context or a multilingual one, or cut the texts where they should "
        "end first (normalize_text's max_length, in characters); an English CLIP scores other "
        "languages low, cut or not, and a score-gated mix then replaces those alt-texts with "
        "captions. The counts are in the step's summary (curate inspect --json)",
        TextCutWarning, stacklevel=2)
