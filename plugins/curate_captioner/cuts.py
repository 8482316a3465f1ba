"""How many alt-texts ``realign`` and ``caption_pairs`` cut at the captioner's ``max_prompt_tokens``,
in their manifest facts.

A captioner reads the first ``max_prompt_tokens`` tokens of a row's alt-text (its prompt) and nothing
after them (:func:`curate_captioner.prompts.truncate_prompt`). The world captioner's 128 tokens hold
~270 English characters but ~40 Chinese or Hindi ones: its tokenizer spends 2-3 tokens on a character
of most non-Latin scripts. The prompts are tokenized where they always were (``Captioner.batch``),
which says which were cut; while a step counts (:func:`counting_cuts`) the captioner keeps that per
prompt text, each shard stores its counts (:mod:`curate.shardfacts`), the step's summary adds them up,
and past :data:`curate.shardfacts.CUT_SHARE` of the prompts a :class:`PromptCutWarning` says so once.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from curate.shardfacts import cut_too_often, largest, read_shard_facts, summed, write_shard_facts
from curate.step import StepContext


class PromptCutWarning(UserWarning):
    """A step's captioner read only the start of many of its alt-texts (cut at max_prompt_tokens)."""


@contextmanager
def counting_cuts(captioner: Any) -> Iterator[dict[str, bool]]:
    """Within: each prompt text the captioner reads, and whether it was cut."""
    seen: dict[str, bool] = {}
    captioner.prompt_cuts = seen
    try:
        yield seen
    finally:
        captioner.prompt_cuts = None


def store_cuts(ctx: StepContext, captioner: Any, prompts: list[str], seen: dict[str, bool]) -> None:
    """This shard's facts: of ``prompts`` (the rows captioned; empty ones are no prompt), how many
    the captioner read (``seen``) cut."""
    read = [prompt for prompt in prompts if prompt]
    cut = sum(seen.get(prompt, False) for prompt in read)
    write_shard_facts(ctx, {"max_prompt_tokens": captioner.config.max_prompt_tokens,
                            "counts": {"prompts": len(read), "prompts_cut": cut}})


def cut_summary(artifacts: Path) -> dict[str, Any]:
    """The step's facts added up over its shards ({} when no shard stored any)."""
    facts = read_shard_facts(artifacts)
    if not facts:
        return {}
    counts = summed(facts, "counts")
    return {"max_prompt_tokens": largest(facts, "max_prompt_tokens"), "prompts": counts.get("prompts", 0),
            "prompts_cut": counts.get("prompts_cut", 0)}


def warn_if_cut(label: str, summary: dict[str, Any]) -> None:
    """A :class:`PromptCutWarning` when more than :data:`curate.shardfacts.CUT_SHARE` of the prompts were
    cut."""
    total, cut = summary.get("prompts") or 0, summary.get("prompts_cut") or 0
    if not cut_too_often(cut, total):
        return
    limit = summary.get("max_prompt_tokens")
    warnings.warn(
        f"step '{label}': {cut:,} of {total:,} alt-texts ({100 * cut / total:.0f} %) are longer than the "
        f"captioner's max_prompt_tokens{f' ({limit})' if limit is not None else ''} and it read their "
        "start only: their captions know nothing of the rest. Its tokenizer spends 2-3 tokens on a "
        "character of most non-Latin scripts (128 tokens: ~40 Chinese characters, ~270 English ones), "
        "and long alt-texts run past it too. Use a captioner with a larger max_prompt_tokens (its "
        "captioner.json) or a multilingual one, or cut the alt-texts where they should end first "
        "(normalize_text's max_length, in characters); a score-gated mix with an English CLIP then "
        "prefers such captions to non-English alt-texts. The counts are in the step's summary "
        "(curate inspect --json)",
        PromptCutWarning, stacklevel=2)
