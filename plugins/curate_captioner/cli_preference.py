"""``curate captioner pairs|dpo|compare``: the preference stage and its measurement. Registered on
the ``captioner`` group by the plugin hook; heavy imports happen inside the commands."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from curate.display import echo


def _threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def _floats(text: str, option: str) -> list[float]:
    from curate_captioner.errors import CaptionerError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CaptionerError(f"{option} {text!r} is not a comma-separated list of numbers", f"e.g. {option} 1,1.5,2") from None


@click.command("pairs")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for pairs.parquet (and near-miss images).")
@click.option("--world", type=click.Path(file_okay=False, exists=True), help="Pairs from a generated world's ground truth.")
@click.option("--dimensions", default="textual,visual,cross_modal", show_default=True, help="World pairs: which dimensions.")
@click.option("--rows", default=4000, show_default=True, help="World rows to make pairs of (one pair per dimension each).")
@click.option("--balance-kinds/--no-balance-kinds", default=False, show_default=True,
              help="World pairs: every applicable textual kind per row, each kind cut to the rarest kind's count.")
@click.option("--table", type=click.Path(dir_okay=False, exists=True), help="A user's Parquet table: image paths + alt_text.")
@click.option("--model", default=None, help="With --table: the SFT captioner that samples the two candidates. With "
              "--world: sample --samples captions per row from it and pair a right one with a wrong one (on-policy).")
@click.option("--samples", default=6, show_default=True, help="With --world --model: captions sampled per row.")
@click.option("--annotator-chosen/--no-annotator-chosen", default=False, show_default=True,
              help="With --world --model: a row no sample gets right pairs the annotator's caption with a sample.")
@click.option("--image-column", default="image", show_default=True)
@click.option("--alt-text-column", default="alt_text", show_default=True)
@click.option("--scorer", default="clip=1,entity=1,length=0.5", show_default=True,
              help="With --table: weights of CLIP score, names kept from the alt-text, length fit.")
@click.option("--clip-model", default="world", show_default=True, help="With --table: the CLIP scorer's open_clip config.")
@click.option("--clip-checkpoint", default=None, help="With --table: local weights of --clip-model.")
@click.option("--margin", default=0.02, show_default=True, help="With --table: a score gap below this is no preference.")
@click.option("--temperature", default=0.7, show_default=True, help="With --model: sampling temperature of the candidates.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=None, type=int)
def pairs(out: str, world: str | None, dimensions: str, rows: int, balance_kinds: bool, table: str | None, model: str | None,
          samples: int, annotator_chosen: bool, image_column: str, alt_text_column: str, scorer: str, clip_model: str,
          clip_checkpoint: str | None, margin: float, temperature: float, seed: int, threads: int | None) -> None:
    """Make a preference pair table (image, alt_text, chosen, rejected, dimension) for `captioner dpo`."""
    from curate_captioner.errors import CaptionerError

    if (world is None) == (table is None):
        raise CaptionerError("give exactly one of --world and --table")
    _threads(threads)
    if world is not None and model is not None:
        if balance_kinds:
            raise CaptionerError("--balance-kinds applies to edited world pairs, not sampled ones",
                                 "leave out --balance-kinds or --model")
        from curate_captioner.sampled import sampled_pairs

        made = sampled_pairs(world, model, out, rows=rows, samples=samples, temperature=temperature, seed=seed,
                             annotator_chosen=annotator_chosen, log=lambda line: echo(line, err=True))
    elif world is not None:
        from curate_captioner.pairs import world_pairs

        made = world_pairs(world, out, dimensions=[d.strip() for d in dimensions.split(",") if d.strip()], rows=rows, seed=seed,
                           balance_kinds=balance_kinds)
    else:
        if balance_kinds:
            raise CaptionerError("--balance-kinds applies to --world pairs only", "leave it out with --table")
        if model is None:
            raise CaptionerError("--table needs --model: the SFT captioner whose samples are ranked")
        from curate_captioner.ranked import Scorer, table_pairs

        weights = dict(part.split("=", 1) for part in scorer.split(",") if "=" in part)
        try:
            ranking = Scorer(**{k.strip(): float(v) for k, v in weights.items()}, margin=margin)
        except (TypeError, ValueError):
            raise CaptionerError(f"--scorer {scorer!r}: use clip=W,entity=W,length=W") from None
        made = table_pairs(table, model, out, scorer=ranking, image_column=image_column, alt_text_column=alt_text_column,
                           clip_model=clip_model, clip_checkpoint=clip_checkpoint, temperature=temperature, seed=seed)
    counts = made.group_by("dimension", "kind").len().sort("dimension", "kind")
    echo(json.dumps({"pairs": made.height, "out": str(Path(out) / "pairs.parquet"),
                     "by_kind": {f"{d}/{k}": n for d, k, n in counts.iter_rows()}}))


@click.command("dpo")
@click.option("--pairs", "pairs_path", required=True, type=click.Path(exists=True), help="pairs.parquet or its folder.")
@click.option("--init", required=True, help="The stage-2 (SFT) captioner: the start and the frozen reference.")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--loss", type=click.Choice(["mcm_dpo", "dpo"]), default="mcm_dpo", show_default=True)
@click.option("--weights", default="textual=1,visual=1,cross_modal=1", show_default=True,
              help="MCM-DPO: weight of each dimension's loss (0 or absent: its pairs are skipped).")
@click.option("--beta", default=0.1, show_default=True)
@click.option("--length-normalize/--no-length-normalize", default=False, show_default=True,
              help="Compare per-token mean log-probabilities instead of sums.")
@click.option("--sft-weight", default=1.0, show_default=True, help="Adds the chosen captions' NLL (RPO); 0 is plain DPO.")
@click.option("--steps", default=300, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--lr", default=1e-5, show_default=True)
@click.option("--warmup", default=20, show_default=True)
@click.option("--kinds", default=None, help="Keep only pairs of these kinds (comma-separated, e.g. "
              "wrong_attribute,entity_dropped,object_missed,near_miss_image,other_alt_text); default: all.")
@click.option("--max-pairs", default=None, type=int, help="A seeded sample of this many pairs.")
@click.option("--seed", default=0, show_default=True)
@click.option("--log-every", default=25, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", default=None, type=int)
@click.option("--feature-cache", default=None, type=click.Path(file_okay=False),
              help="Reuse encoder features and the reference's log-probabilities across runs.")
def dpo(pairs_path: str, init: str, out: str, loss: str, weights: str, beta: float, length_normalize: bool, sft_weight: float, steps: int,
        batch_size: int, lr: float, warmup: int, kinds: str | None, max_pairs: int | None, seed: int, log_every: int, device: str,
        threads: int | None, feature_cache: str | None) -> None:
    """Preference-tune a stage-2 captioner (DPO / MCM-DPO, the SFT model as frozen reference)."""
    import polars as pl

    from curate_captioner.config import resolve_model_path
    from curate_captioner.modelfiles import check_captioner_directory
    from curate_captioner.preference import parse_weights
    from curate_captioner.pairs import read_pairs

    check_captioner_directory(resolve_model_path(init))
    chosen_weights = parse_weights(weights)
    table = read_pairs(pairs_path)
    if loss == "mcm_dpo":
        table = table.filter(pl.col("dimension").is_in([d for d, w in chosen_weights.items() if w > 0]))
    table = table.filter(pl.col("chosen").is_not_null() & pl.col("rejected").is_not_null())
    if kinds is not None:
        from curate_captioner.errors import CaptionerError

        wanted = [k.strip() for k in kinds.split(",") if k.strip()]
        present = set(table["kind"].to_list()) if "kind" in table.columns else set()
        unknown = sorted(set(wanted) - present)
        if unknown:
            raise CaptionerError(f"--kinds {kinds!r}: no pairs of kind {', '.join(unknown)} in {pairs_path}",
                                 f"kinds present: {', '.join(sorted(k for k in present if k)) or 'none (no kind column)'}")
        table = table.filter(pl.col("kind").is_in(wanted))
    if max_pairs is not None and table.height > max_pairs:
        table = table.sample(max_pairs, seed=seed)
    _threads(threads)
    from curate_captioner.dpo import PreferenceConfig, train_preference
    from curate_captioner.model import Captioner

    config = PreferenceConfig(loss=loss, beta=beta, weights=chosen_weights, length_normalize=length_normalize,
                              sft_weight=sft_weight, steps=steps,  # type: ignore[arg-type]
                              batch_size=batch_size, lr=lr, warmup=warmup, seed=seed, log_every=log_every, device=device)
    command = "curate captioner " + " ".join(shlex.quote(a) for a in sys.argv[sys.argv.index("dpo"):]) if "dpo" in sys.argv else None
    summary = train_preference(Captioner.load(init), table, config, out, log=lambda line: echo(line, err=True),
                               facts={"command": command}, feature_cache=feature_cache)
    echo(json.dumps({k: v for k, v in summary.items() if k != "config"}))


def world_comparison(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every comparison on an unseen world takes (``compare``, ``compare-decoding``)."""
    options = [
        click.option("--world", required=True, type=click.Path(file_okay=False, exists=True), help="An unseen world."),
        click.option("--exclude-world", "exclude", multiple=True, type=click.Path(file_okay=False, exists=True),
                     help="Training worlds: rows showing one of their scenes are left out."),
        click.option("--rows", default=600, show_default=True),
        click.option("--batch-size", default=64, show_default=True),
        click.option("--seed", default=0, show_default=True),
        click.option("--threads", default=None, type=int),
        click.option("--out", default=None, type=click.Path(file_okay=False), help="Write COMPARE.md and COMPARE.json here."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def run_comparison(world: str, runs: list[dict[str, Any]], exclude: tuple[str, ...], rows: int, batch_size: int, seed: int,
                   threads: int | None, out: str | None) -> None:
    """Score ``runs`` on ``world`` (``compare.compare_world``), write them under ``out``, print the table."""
    from curate_captioner.compare import compare_world, markdown, write

    _threads(threads)
    result = compare_world(world, runs, exclude=exclude, rows=rows, batch_size=batch_size, seed=seed,
                           log=lambda line: echo(line, err=True))
    if out is not None:
        write(result, Path(out))
    echo(markdown(result), lines=True)
    echo(json.dumps({"captions_per_second": result["captions_per_second"], "rows": result["rows"]}))


@click.command("compare")
@click.option("--model", "models", multiple=True, required=True, help="label=DIR (repeat); the first is the baseline.")
@click.option("--guidance", default="1", show_default=True, help="Image guidance scales to run each model at, e.g. 1,1.5,2,3.")
@click.option("--alt-text-guidance", default=1.0, show_default=True)
@world_comparison
def compare(world: str, models: tuple[str, ...], guidance: str, alt_text_guidance: float, exclude: tuple[str, ...], rows: int,
            batch_size: int, seed: int, threads: int | None, out: str | None) -> None:
    """Score captioners (and guidance scales) on an unseen world with 95% bootstrap CIs."""
    runs = []
    for spec in models:
        label, _, path = spec.rpartition("=")
        for scale in _floats(guidance, "--guidance"):
            runs.append({"label": (label or Path(path).name) + (f" g={scale:g}" if scale != 1 else ""), "model": path,
                         "guidance": scale, "alt_text_guidance": alt_text_guidance})
    run_comparison(world, runs, exclude, rows, batch_size, seed, threads, out)


def register(group: click.Group) -> None:
    for command in (pairs, dpo, compare):
        group.add_command(command)
