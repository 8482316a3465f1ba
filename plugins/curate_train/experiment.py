"""The closed-loop blend experiment: curate one world pool once, then train a tiny CLIP per caption
blend on the same images for the same number of samples, and evaluate each on the world's clean
eval split. Results go to ``RUN_DIR/experiment/results.json`` (+ ``results.md``), which the report's
Experiments section reads.

The pool: the world's train-split pairs. The synthetic caption is, with ``synthetic: annotator``,
the world's annotator-style realigned caption for every row (``realign_fraction: 1``: the
captioner's training target, an upper bound on its quality), or, with ``synthetic: captioner``,
what the shipped realignment captioner (``realign`` step, ``captioner_model``) writes for each
row's image and alt-text — the closed loop as a user would run it.
``score_gated`` needs CLIP scores of both captions; they come from the ``alt_text`` variant's model
(a CLIP trained on web alt-text, as a web CLIP scores web data), so that variant trains first.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml
from pydantic import Field, field_validator

from curate import display
from curate.params import Params
from curate_train.spec_experiment import MAX_BATCH_SIZE, MAX_THREADS


class Variant(Params):
    name: str
    strategy: str
    options: dict[str, Any] = Field(default_factory=dict)


WORLD_DEFAULTS = {"fault_rate": 0.0}  # the pool is the world's pairs themselves: no download, no faults


class ExperimentSpec(Params):
    name: str = "blend"
    world: dict[str, Any] = Field(default_factory=lambda: {"n": 3000, "seed": 0})
    seed: int = 0
    seeds: list[int] = Field(default_factory=list,
                             description="run once per seed (RUN_DIR/seed-N) and summarize; overrides seed")
    epochs: int = Field(6, ge=1, le=1000, description="unrolled epochs (copies of each sample) per variant; at "
                        "most the webdataset export's 1000 copies")
    batch_size: int = Field(128, gt=0, le=MAX_BATCH_SIZE)
    lr: float = Field(2e-3, gt=0, allow_inf_nan=False)
    warmup: int = Field(20, ge=0)
    threads: int = Field(1, ge=1, le=MAX_THREADS, description="torch threads of each training run")
    model: str = Field("tiny", description="'tiny' (this package's config), 'world' (curate_clip's), an open_clip "
                                            "config .json, or local-dir:<folder> (training starts from its weights)")
    scorer: str = Field("alt_text", description="the variant whose model scores captions for score_gated")
    synthetic: Literal["annotator", "captioner"] = Field(
        "annotator", description="synthetic captions: the world's annotator captions, or the realign step's")
    captioner_model: str = Field("world", description="with synthetic: captioner, the realign step's model")
    variants: list[Variant]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        from curate_train.patch import experiment_name

        return experiment_name(value)

    @field_validator("world")
    @classmethod
    def _world(cls, value: dict[str, Any]) -> dict[str, Any]:
        """The world's parameters (``curate_world``'s WorldParams), checked when the spec loads,
        before anything runs; where it goes (the experiment's own ``world/``) and whether to
        replace it are the experiment's to say (``out_dir`` was an internal error, ``overwrite``
        replaced the experiment's world)."""
        from curate_world.api import WorldParams

        own = sorted(set(value) & {"out_dir", "overwrite", "realign_fraction"})
        if own:
            raise ValueError(f"{', '.join(own)} {'is' if len(own) == 1 else 'are'} the experiment's to set, not "
                             "the world's: it writes its world to its own world/ folder, with every row realigned")
        from pydantic import ValidationError

        try:
            WorldParams(**{**WORLD_DEFAULTS, **value, "realign_fraction": 1.0})
        except ValidationError as exc:  # one line per bad key, as the rest of the spec's problems
            said = "; ".join(f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors())
            raise ValueError(f"not a world's parameters ({said})") from None
        return value


def load(path: Path) -> ExperimentSpec:
    """The spec, or one SpecError naming every bad field (never a pydantic traceback)."""
    from pydantic import ValidationError

    from curate.errors import Problem, SpecError
    from curate.spec import format_path, parse_yaml, problems_from_validation, read_spec_file

    from curate.errors import CurateError
    from curate.spec import line_of
    from curate_train.clip import resolve_model

    data, node = parse_yaml(read_spec_file(path), str(path))
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError([Problem(format_path(loc), message) for loc, message in problems_from_validation(exc)],
                        str(path)) from None
    try:  # before the world is generated: a model's config is checked as curate_train.clip says
        resolve_model(spec.model)
    except CurateError as exc:
        raise SpecError([Problem("model", exc.message, exc.hint, line=line_of(node, ("model",)))], str(path)) from None
    return spec


def build_pool(world_dir: Path, world: dict[str, Any]) -> pl.DataFrame:
    from curate_world.api import generate_world

    generate_world(world_dir, **{**WORLD_DEFAULTS, **world, "realign_fraction": 1.0})
    pairs = pl.read_parquet(world_dir / "world.parquet").filter(pl.col("split") == "train")
    realigned = pl.read_parquet(world_dir / "realigned.parquet").select("world_id", pl.col("caption")
                                                                        .alias("caption_realigned"))
    images = str((world_dir / "images").resolve())
    return pairs.join(realigned, on="world_id", how="left").select(
        pl.format("{}", pl.col("world_id").cast(pl.Utf8).str.zfill(6)).alias("uid"),
        pl.struct(pl.lit(images).alias("shard"), pl.col("world_id").cast(pl.Utf8).str.zfill(6).alias("key"))
        .alias("image"),
        "alt_text", "caption_realigned", "noise_type",
    )


def realign_pool(pool: pl.DataFrame, model: str, seed: int, workdir: Path) -> pl.DataFrame:
    """The pool with ``caption_realigned`` written by the ``realign`` step instead of the annotator
    (run by the engine in ``workdir``)."""
    from curate_train.pipeline import run_steps

    rows = pool.drop("caption_realigned")
    realigned = run_steps(rows, [{"step": "realign", "params": {"model": model}}], workdir, seed=seed,
                          name="realign")
    return rows.join(realigned.select("uid", "caption_realigned"), on="uid", how="left").select(pool.columns)


def score_pool(pool: pl.DataFrame, checkpoint: Path, world_dir: Path, model_name: str) -> pl.DataFrame:
    """Cosine similarity of each image with its alt-text and its realigned caption."""
    from curate_train.clip import load_clip
    from curate_train.evaluate import encode_images, encode_texts

    model, preprocess, tokenizer = load_clip(checkpoint, model_name)
    images = encode_images(model, preprocess, [world_dir / "images" / f"{k}.jpg" for k in pool["uid"]])
    from curate_mix.api import MixColumns

    columns = MixColumns()  # the score columns the mix step reads by default
    scores = {}
    for column, name in ((columns.original, columns.original_score), (columns.synthetic, columns.synthetic_score)):
        texts = encode_texts(model, tokenizer, pool[column].fill_null("").to_list())
        scores[name] = (images * texts).sum(1).tolist()
    return pool.with_columns(pl.Series(k, v, pl.Float64) for k, v in scores.items())


def mix(pool: pl.DataFrame, variant: Variant, seed: int, workdir: Path) -> pl.DataFrame:
    """The ``mix`` step on the pool, run by the engine in ``workdir`` (as ``curate run`` would)."""
    from curate_train.pipeline import run_steps

    step = {"step": "mix", "params": {"strategy": variant.strategy, "options": variant.options}}
    return run_steps(pool, [step], workdir, seed=seed, name=f"mix-{variant.name}")


def export(table: pl.DataFrame, out: Path, repeats: int, seed: int) -> Path:
    from curate_export.api import WebDatasetSink

    from curate.sink import SinkContext
    from curate.step import TableInput

    out.parent.mkdir(parents=True, exist_ok=True)
    source = out.with_suffix(".parquet")
    table.write_parquet(source)
    ctx = SinkContext(run_dir=out.parent, spec_dir=out.parent, seed=seed, label=out.name, path=out.name)
    sink = WebDatasetSink(WebDatasetSink.Params(repeats=repeats, samples_per_shard=500, seed=seed), ctx)
    sink.write(TableInput([source], dict(table.schema)))
    return out


def run(spec: ExperimentSpec, run_dir: Path, *, echo: Any = display.echo) -> list[dict[str, Any]]:
    from curate_train.clip import train_clip
    from curate_train.evaluate import eval_zeroshot

    out = run_dir / "experiment"
    out.mkdir(parents=True, exist_ok=True)
    world_dir = run_dir / "world"
    started = time.monotonic()
    pool = build_pool(world_dir, spec.world)
    echo(f"pool: {pool.height} pairs from world {spec.world} ({time.monotonic() - started:.0f}s)")
    if spec.synthetic == "captioner":
        pool = realign_pool(pool, spec.captioner_model, spec.seed, out / "curate" / "realign")
        echo(f"realigned {pool.height} alt-texts with captioner '{spec.captioner_model}' "
             f"({time.monotonic() - started:.0f}s)")
    order = sorted(spec.variants, key=lambda v: v.name != spec.scorer)
    results, checkpoints = [], {}
    for variant in order:
        begun = time.monotonic()
        if variant.strategy == "score_gated" and "clip_score" not in pool.columns:
            if spec.scorer not in checkpoints:
                raise ValueError(f"score_gated needs the scorer variant '{spec.scorer}' to train first")
            pool = score_pool(pool, checkpoints[spec.scorer], world_dir, spec.model)
        table = mix(pool, variant, spec.seed, out / "curate" / variant.name)
        shards = export(table, out / "shards" / variant.name, spec.epochs, spec.seed)
        import shutil

        shutil.rmtree(out / "logs" / variant.name, ignore_errors=True)  # a re-run's: train_clip refuses one that exists
        checkpoint = train_clip(shards, out / "logs", name=variant.name, epochs=1, batch_size=spec.batch_size,
                                lr=spec.lr, warmup=spec.warmup, seed=spec.seed, model=spec.model,
                                threads=spec.threads)
        checkpoints[variant.name] = checkpoint
        metrics = eval_zeroshot(checkpoint, world_dir, spec.model)
        sources = dict(table["caption_source"].value_counts().iter_rows())
        row = {"variant": variant.name, "strategy": variant.strategy, "options": variant.options,
               **metric_columns(metrics), "synthetic_share": round(sources.get("synthetic", 0) / table.height, 3),
               "seconds": round(time.monotonic() - begun, 1)}
        results.append(row)
        echo(json.dumps(row))
        write(out, spec, pool.height, results, time.monotonic() - started)
    return results


def metric_columns(metrics: dict[str, float]) -> dict[str, float]:
    """Percentages, two decimals: ``accuracy`` is the headline zero-shot (vocabulary prompts)."""
    names = {"accuracy": "zeroshot", "acc_shape": "acc_shape", "acc_color": "acc_color",
             "accuracy_simple": "zeroshot_simple", "i2t_r1": "i2t_r1", "t2i_r1": "t2i_r1"}
    return {column: round(100 * metrics[key], 2) for column, key in names.items()}


def reevaluate(spec: ExperimentSpec, run_dir: Path, *, echo: Any = display.echo) -> list[dict[str, Any]]:
    """Evaluate every trained variant again (after an evaluation change) and rewrite the results."""
    import torch

    from curate_train.evaluate import eval_zeroshot

    torch.set_num_threads(1)
    out = run_dir / "experiment"
    saved = json.loads((out / "results.json").read_text())
    results = []
    for row in saved["results"]:
        checkpoint = out / "logs" / row["variant"] / "checkpoints" / "epoch_1.pt"
        row = {**row, **metric_columns(eval_zeroshot(checkpoint, run_dir / "world", spec.model))}
        results.append(row)
        echo(json.dumps(row))
    write(out, spec, saved["pool_rows"], results, saved["seconds"])
    return results


def write(out: Path, spec: ExperimentSpec, pool_rows: int, results: list[dict[str, Any]], seconds: float) -> None:
    facts = {"name": spec.name, "seed": spec.seed, "synthetic": spec.synthetic, "world": json.dumps(spec.world), "pool_rows": pool_rows,
             "model": spec.model, "epochs": spec.epochs, "lr": spec.lr, "samples_seen": pool_rows * spec.epochs, "batch_size": spec.batch_size,
             "metric": "accuracy = mean zero-shot accuracy over label_shape and label_color (%), prompts "
                       "'a large {color} {shape}' averaged over the other attribute; accuracy_simple: generic "
                       "templates; i2t/t2i_r1: retrieval R@1 (%) against visual_description",
             "seconds": round(seconds, 1)}
    (out / "results.json").write_text(json.dumps({**facts, "results": results}, indent=2))
    (out / "results.md").write_text(markdown(facts, results))


def markdown(facts: dict[str, Any], results: list[dict[str, Any]]) -> str:
    columns = ["variant", "accuracy", "acc_shape", "acc_color", "accuracy_simple", "i2t_r1", "t2i_r1",
               "synthetic_share", "seconds"]
    lines = [f"# Blend experiment '{facts['name']}'", "",
             ", ".join(f"{k}: {v}" for k, v in facts.items() if k != "name"), "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in results]
    return "\n".join(lines) + "\n"
