"""``curate captioner compare-decoding``: one captioner under several decoding settings (temperature,
top-p, copy bias, best-of-N world-CLIP reranking, prompt rewrites) on an unseen world, with paired
95% bootstrap CIs against the first setting (``curate_captioner.compare``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from curate_captioner.cli_preference import run_comparison, world_comparison
from curate_captioner.errors import CaptionerError


def _rewrites(value: str) -> list[str]:
    """``none``, or rewrite names joined by ``+`` (``file_names+fold_shouting``)."""
    from curate_captioner.rewrite import REWRITES

    names = [] if value == "none" else value.split("+")
    unknown = [n for n in names if n not in REWRITES]
    if unknown:
        raise ValueError(f"names an unknown rewrite ({', '.join(map(repr, unknown))}; the rewrites: "
                         f"{', '.join(REWRITES)}, joined by +, or none)")
    return names


KEYS: dict[str, Callable[[str], Any]] = {"temperature": float, "top_p": float, "copy_bias": float, "best_of": int,
                                         "decode_seed": int, "prompt_rewrites": _rewrites}


def parse_setting(text: str) -> dict[str, Any]:
    """``label:key=value,key=value`` (keys: temperature, top_p, copy_bias, best_of, decode_seed,
    prompt_rewrites); ``label`` alone is the captioner's defaults."""
    label, _, rest = text.partition(":")
    run: dict[str, Any] = {"label": label.strip()}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, _, value = item.partition("=")
        if key not in KEYS:
            raise CaptionerError(f"--setting {text!r}: unknown key {key!r}", f"use {', '.join(KEYS)}")
        try:
            run[key] = KEYS[key](value)
        except ValueError as exc:
            what = str(exc) if key == "prompt_rewrites" else f"is not {'a whole number' if KEYS[key] is int else 'a number'}"
            raise CaptionerError(f"--setting {text!r}: {key}={value!r} {what}",
                                 "e.g. bo2:best_of=2, greedy:temperature=0 or as_written:prompt_rewrites=none") from exc
    if not run["label"]:
        raise CaptionerError(f"--setting {text!r}: no label", "write LABEL:key=value,... e.g. greedy:temperature=0")
    return run


@click.command("compare-decoding")
@click.option("--model", default="world", show_default=True, help="Captioner directory, or 'world'.")
@click.option("--setting", "settings", multiple=True, required=True,
              help="LABEL[:key=value,...] (repeat; the first is the baseline), keys temperature, top_p, copy_bias, "
                   "best_of, decode_seed, prompt_rewrites (none, or names joined by +), e.g. --setting default "
                   "--setting bo2:best_of=2 --setting as_written:prompt_rewrites=none")
@world_comparison
def compare_decoding(world: str, model: str, settings: tuple[str, ...], exclude: tuple[str, ...], rows: int, batch_size: int,
                     seed: int, threads: int | None, out: str | None) -> None:
    """Score decoding settings of one captioner on an unseen world with 95% bootstrap CIs."""
    runs = [{**parse_setting(text), "model": model} for text in settings]
    run_comparison(world, runs, exclude, rows, batch_size, seed, threads, out)
