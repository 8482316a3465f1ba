"""Experiments over any curation spec: a base spec plus named variants (patches, see
:mod:`curate_train.patch`), each curated by the engine, exported, trained on for the same number of
samples and evaluated on eval sets given as data, once per seed.

    name: digits
    spec: digits/pool.yaml             # the base curation spec (or an inline mapping)
    seeds: [0, 1, 2]
    train: {model: tiny, samples: 12800, batch_size: 64, caption: alt_text}
    eval: [{name: digits, format: table, path: ../runs/digits-data/eval.parquet}]
    variants:
      - name: no_filter
      - name: clip_top60
        insert: [{after: dedup, steps: [{step: clip_score, params: {model: "{model:no_filter}"}},
                                        {step: clip_filter, params: {top_fraction: 0.6}}]}]

- **Shared steps run once.** Every variant and seed curates into one content-addressed store
  (``RUN_DIR/store``): a step whose fingerprint (its params, its upstream's fingerprint, the seed
  only for random steps) was computed before is reused, so variants with an identical prefix of
  steps compute it once; each variant's ``result.json`` lists which of its steps were cached.
- **Equal budgets.** Every variant trains on exactly ``ceil(samples / batch_size) * batch_size``
  samples: its rows are exported ``ceil(samples_seen / rows)`` times and open_clip_train's epoch is
  cut at that many samples (``--train-num-samples``).
- **Paired seeds.** Seed s sets the spec's ``run.seed`` (random steps' draws), the export's shuffle
  of copies and open_clip_train's ``--seed`` (initialization and sample order) for every variant;
  variants with the same rows in seed s train identically.
- ``{model:VARIANT}`` in any string of a patch (or the base) is that variant's trained model in the
  same seed (``local-dir:...``): the digits loop scores with the model trained on the unfiltered pool.
  ``{rows:VARIANT}`` is the number of rows that variant trained on in the same seed (an int when
  it is the whole value): ``sample: {count: "{rows:balanced}"}`` draws a pool of the same size.
- ``{seed}`` in any string of the base or a patch is the seed: ``path: pools/world-{seed}.parquet``
  gives each seed its own pool (a world per seed, not only an initialization per seed).

Results: ``RUN_DIR/seed-S/VARIANT/result.json`` and ``RUN_DIR/experiment/summary.{json,md}``
(:mod:`curate_train.gaps`).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from curate import display
from curate.errors import CurateError, Problem, SpecError
from curate.params import Params
from curate_train.patch import Origin, Variant, closest, experiment_name, step_labels, traced_patch

MODEL_REF = re.compile(r"\{(model|rows):([^{}]*)\}")
SEED_REF = "{seed}"
RESULT = "result.json"


# Bounds on the training settings, so an experiment from someone else cannot pass validation and
# then ask for what no run here needs: the export writes a copy of every sample seen to disk.
MAX_SAMPLES = 1_000_000_000
MAX_BATCH_SIZE = 65_536  # as clip_score's
MAX_THREADS = 1024


class TrainSettings(Params):
    model: str = Field("tiny", description="tiny, world, an open_clip config .json or local-dir:<folder>")
    samples: int = Field(gt=0, le=MAX_SAMPLES, description="samples every variant sees (rounded up to whole "
                         "batches); the export writes each as a copy on disk")
    batch_size: int = Field(64, gt=0, le=MAX_BATCH_SIZE)
    lr: float = Field(2e-3, gt=0, allow_inf_nan=False)
    warmup: int = Field(20, ge=0)
    threads: int = Field(1, ge=1, le=MAX_THREADS, description="torch threads of each training run")
    precision: str = "fp32"
    caption: str = Field("alt_text", description="the column trained on as the image's text")
    step: str | None = Field(None, description="train on this step's rows (default: the last step's)")

    @property
    def samples_seen(self) -> int:
        return math.ceil(self.samples / self.batch_size) * self.batch_size

    def places(self) -> list[tuple[str, str]]:
        """The folder or config file ``model`` names (not tiny or world), and the files of a
        ``local-dir:`` folder, for an experiment run with --untrusted (curate_train.untrusted)."""
        from curate_clip.api import local_dir_files

        if self.model in ("tiny", "world"):
            return []
        return [("model", place) for place in local_dir_files(self.model) or [self.model]]


class SpecExperiment(Params):
    name: str
    spec: str | dict[str, Any] = Field(description="the base curation spec: a path (relative to this file) "
                                                   "or the spec itself")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    train: TrainSettings
    eval: list[dict[str, Any]] = Field(min_length=1, description="eval sets (curate_train/evalsets.py fields)")
    variants: list[Variant] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return experiment_name(value)

    @field_validator("variants")
    @classmethod
    def _unique(cls, variants: list[Variant]) -> list[Variant]:
        names = [v.name for v in variants]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"two variants are named '{twice[0]}': give each a distinct name")
        return variants

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat: {seeds}")
        return seeds


class Loaded:
    """An experiment file, its base spec's data and where that came from; their YAML (``node``,
    ``base_node``) so that problems name their lines."""

    def __init__(self, experiment: SpecExperiment, path: Path, base: dict[str, Any], base_path: Path,
                 node: yaml.Node | None = None, base_node: yaml.Node | None = None, untrusted: bool = False,
                 allow_remote: tuple[str, ...] = ()):
        self.experiment, self.path, self.base, self.base_path = experiment, path, base, base_path
        self.node, self.base_node = node, base_node
        # --untrusted: every variant's plan is untrusted (curate.untrusted), with the storage URL
        # prefixes of --allow-remote; the experiment's own places are checked by validate()
        self.untrusted, self.allow_remote = untrusted, allow_remote

    def line(self, *loc: str | int) -> int | None:
        """The line of ``loc`` in the experiment file."""
        from curate.spec import line_of

        return line_of(self.node, loc)

    def base_yaml(self) -> tuple[yaml.Node | None, str | None]:
        """The base spec's YAML, and its file where that is not the experiment file (a base given
        inline under ``spec:`` is in it)."""
        from curate.spec import node_at

        if isinstance(self.experiment.spec, dict):
            return node_at(self.node, ("spec",)), None
        return self.base_node, _shown(self.base_path)

    def base_line(self, *loc: str | int) -> tuple[int | None, str | None]:
        """The line of ``loc`` in the base spec, and the file as :meth:`base_yaml` says."""
        from curate.spec import line_of

        node, file = self.base_yaml()
        return line_of(node, loc), file


def is_spec_experiment(path: Path) -> bool:
    """True for an experiment over a spec (it has ``spec:``); the world blend experiment has none."""
    from curate.spec import parse_yaml, read_spec_file

    try:
        data, _ = parse_yaml(read_spec_file(path), str(path))
    except (SpecError, OSError):
        return False  # the world blend experiment's loader reports what is wrong
    return isinstance(data, dict) and "spec" in data


def load(path: Path, untrusted: bool = False, allow_remote: tuple[str, ...] = ()) -> Loaded:
    """Parse the experiment file and its base spec; problems are one SpecError, never a traceback.
    ``untrusted`` (--untrusted): a base spec outside the experiment file's folder is refused unread."""
    from curate.spec import format_path, line_of, parse_yaml, problems_from_validation, read_spec_file

    source = str(path)
    try:
        text = read_spec_file(path)  # a regular file of a spec's size at most
    except OSError as exc:
        raise SpecError([Problem("", f"cannot read the experiment file: {exc}")], source) from None
    data, node = parse_yaml(text, source)
    if not isinstance(data, dict):
        raise SpecError([Problem("", "an experiment is a mapping with name, spec, train, eval and variants")], source)
    try:
        experiment = SpecExperiment.model_validate(data)
    except ValidationError as exc:
        problems = []
        for loc, message in problems_from_validation(exc):
            loc = _named(loc, data)
            hint = None
            if message == "unknown key":
                hint = closest(str(loc[-1]), _allowed_keys(loc))
            problems.append(Problem(format_path(loc), message, hint, line=line_of(node, _indexed(loc, data))))
        raise SpecError(problems, source) from None
    base_node = None
    if isinstance(experiment.spec, dict):
        base, base_path = copy.deepcopy(experiment.spec), path
    else:
        from curate_train.untrusted import base_spec_problem

        refused = base_spec_problem(experiment.spec, path.parent, line_of(node, ("spec",))) if untrusted else None
        if refused is not None:
            raise SpecError([refused], source)
        base_path = (path.parent / experiment.spec).resolve()
        if not base_path.is_file():
            raise SpecError([Problem("spec", f"the base spec {base_path} does not exist",
                                     "spec: is a curation spec's path, relative to this file",
                                     line=line_of(node, ("spec",)))], source)
        base, base_node = parse_yaml(read_spec_file(base_path), str(base_path))
        if not isinstance(base, dict):
            raise SpecError([Problem("spec", f"{base_path} is not a curation spec (a mapping)",
                                     line=line_of(node, ("spec",)))], source)
    return Loaded(experiment, path, base, base_path, node, base_node, untrusted, tuple(allow_remote))


def _named(loc: tuple, data: dict[str, Any]) -> tuple:
    """``variants.2.set`` → ``variants.<name>.set``: say which variant by its name."""
    if len(loc) > 1 and loc[0] == "variants" and isinstance(loc[1], int):
        entries = data.get("variants") or []
        if loc[1] < len(entries) and isinstance(entries[loc[1]], dict) and entries[loc[1]].get("name"):
            return ("variants", str(entries[loc[1]]["name"]), *loc[2:])
    return loc


def _indexed(loc: tuple, data: dict[str, Any]) -> tuple:
    if len(loc) > 1 and loc[0] == "variants" and isinstance(loc[1], str):
        names = [v.get("name") if isinstance(v, dict) else None for v in data.get("variants") or []]
        if loc[1] in names:
            return ("variants", names.index(loc[1]), *loc[2:])
    return loc


def _allowed_keys(loc: tuple) -> list[str]:
    from curate_train.patch import Insert

    models: dict[str, Any] = {"": SpecExperiment, "train": TrainSettings, "variants": Variant, "insert": Insert}
    parents = [p for p in loc[:-1] if isinstance(p, str) and p in models]
    model = models[parents[-1]] if parents else SpecExperiment
    return list(model.model_fields)


# -- variants ---------------------------------------------------------------------------------
def references(data: Any) -> set[str]:
    """Variant names referred to as ``{model:NAME}`` or ``{rows:NAME}`` anywhere in ``data``."""
    return {name for _, name in placeholders(data)}


def placeholders(data: Any) -> set[tuple[str, str]]:
    """``(kind, NAME)`` of every ``{model:NAME}`` and ``{rows:NAME}`` anywhere in ``data``: what an
    error about a reference quotes back (the placeholder the user wrote)."""
    if isinstance(data, str):
        return {(kind, name.strip()) for kind, name in MODEL_REF.findall(data)}
    if isinstance(data, dict):
        return set().union(*(placeholders(v) for v in data.values())) if data else set()
    if isinstance(data, list):
        return set().union(*(placeholders(v) for v in data)) if data else set()
    return set()


def substitute(data: Any, models: dict[str, str], rows: dict[str, int] | None = None) -> Any:
    """``{model:NAME}`` → NAME's model (``local-dir:...``), ``{rows:NAME}`` → the number of rows
    NAME trained on (an int when it is the whole string, as in ``count: "{rows:balanced}"``)."""
    rows = rows or {}
    if isinstance(data, str):
        whole = MODEL_REF.fullmatch(data.strip())
        if whole and whole.group(1) == "rows":
            return rows[whole.group(2).strip()]
        return MODEL_REF.sub(lambda m: models[m.group(2).strip()] if m.group(1) == "model"
                             else str(rows[m.group(2).strip()]), data)
    if isinstance(data, dict):
        return {k: substitute(v, models, rows) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute(v, models, rows) for v in data]
    return data


def with_seed(data: Any, seed: int) -> Any:
    """``{seed}`` in any string → the seed: one pool per seed (``path: pools/world-{seed}.parquet``)."""
    if isinstance(data, str):
        return data.replace(SEED_REF, str(seed))
    if isinstance(data, dict):
        return {k: with_seed(v, seed) for k, v in data.items()}
    if isinstance(data, list):
        return [with_seed(v, seed) for v in data]
    return data


def variant_specs(loaded: Loaded) -> tuple[dict[str, dict[str, Any]], list[str], list[Problem],
                                            dict[str, list[Origin]]]:
    """Each variant's spec data, the order to run them in (a variant after those whose models it
    uses), the problems (bad patch paths, unknown or circular ``{model:...}`` or ``{rows:...}``
    references) and where each step of each variant was written (:func:`curate_train.patch.traced_patch`)."""
    problems: list[Problem] = []
    specs: dict[str, dict[str, Any]] = {}
    origins: dict[str, list[Origin]] = {}
    needs: dict[str, set[str]] = {}
    names = [v.name for v in loaded.experiment.variants]
    for index, variant in enumerate(loaded.experiment.variants):
        data, found, origins[variant.name] = traced_patch(
            loaded.base, variant, lambda loc, index=index: loaded.line("variants", index, *loc))
        problems += found
        specs[variant.name] = data
        needs[variant.name] = references(data)
        for kind, ref in sorted(placeholders(data)):
            written = f"'{{{kind}:{ref}}}'"  # as the user wrote it: {model:NAME} or {rows:NAME}
            line, file = _placeholder_line(loaded, index, kind, ref)
            if ref not in names:
                problems.append(Problem(f"variants.{variant.name}", f"{written} names no variant",
                                        closest(ref, names), line, file))
            elif ref == variant.name:
                own = "model" if kind == "model" else "rows (known only once it has curated)"
                problems.append(Problem(f"variants.{variant.name}", f"{written} is the variant's own {own}",
                                        "a variant can use the model (or rows) of another variant only", line, file))
    order: list[str] = []
    pending = [n for n in names]
    while pending:
        ready = [n for n in pending if needs[n] & set(names) <= set(order) | {n}]
        if not ready:
            problems.append(Problem("variants", "the {model:...} / {rows:...} references form a cycle: "
                                    + ", ".join(pending), line=loaded.line("variants")))
            order += pending
            break
        order.append(ready[0])
        pending.remove(ready[0])
    return specs, order, problems, origins


def _placeholder_line(loaded: Loaded, index: int, kind: str, ref: str) -> tuple[int | None, str | None]:
    """Where ``{kind:ref}`` is written: in the variant, else in the base spec, else the variant's
    own line. Returns the line and, when not the experiment file, the file (:meth:`Loaded.base_yaml`)."""
    from curate.spec import node_at

    line = _scalar_line(node_at(loaded.node, ("variants", index)), kind, ref)
    if line is not None:
        return line, None
    node, file = loaded.base_yaml()
    line = _scalar_line(node, kind, ref)
    return (line, file) if line is not None else (loaded.line("variants", index), None)


def _scalar_line(node: yaml.Node | None, kind: str, ref: str) -> int | None:
    """The line of the first string under ``node`` that holds ``{kind:ref}``."""
    if isinstance(node, yaml.ScalarNode):
        found = {(k, name.strip()) for k, name in MODEL_REF.findall(str(node.value))}
        return node.start_mark.line + 1 if (kind, ref) in found else None
    children = ([item for pair in node.value for item in pair] if isinstance(node, yaml.MappingNode)
                else node.value if isinstance(node, yaml.SequenceNode) else [])
    for child in children:
        line = _scalar_line(child, kind, ref)
        if line is not None:
            return line
    return None


def plan_variant(loaded: Loaded, data: dict[str, Any], seed: int, run_dir: Path, store: Path, pm: Any):
    """The engine's plan of one variant's spec in ``run_dir``, its steps cached in ``store``."""
    from curate.plan import make_plan
    from curate.spec import load_spec_data

    data = with_seed(data, seed)
    cache_dir = str(store.resolve())
    if loaded.untrusted:  # as an untrusted spec may name its store: relative, inside the working directory
        cache_dir = os.path.relpath(store.resolve(), os.path.realpath(os.getcwd()))
    data = {**data, "run": {**(data.get("run") or {}), "seed": seed, "cache_dir": cache_dir}}
    data["run"].pop("dir", None)
    # Without a YAML node: a variant's spec is written nowhere, so its problems have no lines of
    # their own; validate() shows each where it was written (variant_problem).
    loaded_spec = load_spec_data(data, loaded.base_path)
    if loaded.untrusted:
        loaded_spec.spec.run.untrusted = True
    return make_plan(loaded_spec, pm, run_dir, loaded.allow_remote)  # raises every problem, loading's included


def variant_problem(loaded: Loaded, index: int, steps: list[Any], origins: list[Origin], problem: Problem,
                    ) -> Problem:
    """A problem of variant ``index``'s plan, named by the variant and shown where it was written:
    a key the variant `set`, a step it inserted, else the base spec (in its own file); the
    variant's line when none of these says."""
    from curate.spec import parse_path

    name = loaded.experiment.variants[index].name
    line, file = _written_at(loaded, index, steps, origins, parse_path(problem.path))
    return Problem(f"variants.{name}: {problem.path}" if problem.path else f"variants.{name}", problem.message,
                   problem.hint, line, file)


def _written_at(loaded: Loaded, index: int, steps: list[Any], origins: list[Origin],
                loc: tuple) -> tuple[int | None, str | None]:
    if not loc:
        return loaded.line("variants", index), None
    variant = loaded.experiment.variants[index]
    position = loc[1] if loc[0] == "steps" and len(loc) > 1 and isinstance(loc[1], int) else None
    labels = step_labels(steps)
    found = tuple(str(part) for part in loc)
    for path in variant.set:  # the value it set, or what holds the value
        wrote = path.split(".")
        if wrote[0] == "steps" and len(wrote) > 1 and position is not None and position < len(labels):
            if wrote[1] not in (labels[position], str(position)):
                continue
            wrote = ["steps", str(position), *wrote[2:]]
        if tuple(wrote) == found[:len(wrote)]:
            return loaded.line("variants", index, "set", path), None
    if position is None:  # source, run, outputs: as the base has them
        return loaded.base_line(*loc)
    origin = origins[position] if position < len(origins) else None
    if origin is not None and origin[0] == "insert":
        return loaded.line("variants", index, "insert", origin[1], "steps", origin[2], *loc[2:]), None
    if origin is not None:
        return loaded.base_line("steps", origin[1], *loc[2:])
    return loaded.line("variants", index), None


def validate(loaded: Loaded, run_dir: Path) -> dict[str, Any]:
    """Every check that needs no run: patches, references, each variant's plan (plugins, params,
    columns), the trained step and caption column, the eval sets' fields and files (untrusted: the
    images they list, curate_train.evalsets.read_rows). Raises one SpecError listing every problem;
    returns a summary of the plans."""
    from curate.plugins import get_plugin_manager
    from curate.schema import Image
    from curate_train.clip import resolve_model
    from curate_train.evalsets import check_groups, make_eval_set, read_rows

    experiment = loaded.experiment
    specs, order, problems, origins = variant_specs(loaded)
    trained_model = experiment.train.model
    planned = order
    refused: dict[int, Problem] = {}  # eval sets not looked at: they may name any file of this machine
    model_refused: list[Problem] = []
    if loaded.untrusted:
        from curate_train.untrusted import eval_problems, model_problems, store_problem

        if (outside := store_problem(run_dir)) is not None:
            problems.append(Problem("--run-dir", outside, "choose a run directory inside the working directory "
                                    "with --run-dir, or run the experiment without --untrusted if you trust it"))
            planned = []  # each variant's plan would be refused for its store (run.cache_dir) alone
        refused = eval_problems(loaded, loaded.allow_remote)
        model_refused = model_problems(loaded, loaded.allow_remote)
        problems += list(refused.values()) + model_refused
    try:
        if model_refused:
            trained_model = "tiny"  # not read: the variants' plans are checked with a stand-in (below)
        else:
            resolve_model(trained_model)
    except CurateError as exc:
        problems.append(Problem("train.model", exc.message, exc.hint, loaded.line("train", "model")))
        trained_model = "tiny"  # the variants' plans are still checked, with a stand-in for its models
    from curate_train.clip import PRECISIONS

    if experiment.train.precision not in PRECISIONS:
        problems.append(Problem("train.precision", f"'{experiment.train.precision}' is not one open_clip_train "
                                "accepts", f"choose one of {', '.join(PRECISIONS)}", loaded.line("train", "precision")))
    for index, fields in enumerate(experiment.eval):
        if index in refused:
            continue  # not looked at: it may name any file of this machine
        try:
            evalset = make_eval_set(fields, f"eval[{index}]", base=loaded.path.parent)
            if not Path(evalset.path).exists():
                problems.append(Problem(f"eval[{index}].path", f"{evalset.path} does not exist",
                                        "paths are relative to the experiment file", loaded.line("eval", index, "path")))
            else:  # untrusted: every image it lists is checked (read_rows), so validate refuses as run would
                check_groups(evalset, read_rows(evalset, untrusted=True) if loaded.untrusted else None)
        except CurateError as exc:
            problems.append(Problem(f"eval[{index}]", exc.message, exc.hint, loaded.line("eval", index)))
    pm = get_plugin_manager()
    plans: dict[str, list[str]] = {}
    from curate_clip.api import weights_to_come

    with tempfile.TemporaryDirectory(prefix="curate-experiment-") as scratch, weights_to_come(Path(scratch) / "model"):
        placeholder = _placeholder_model(trained_model, Path(scratch))
        for name in planned:
            index = [v.name for v in experiment.variants].index(name)
            refs = references(specs[name])
            data = substitute(specs[name], {ref: placeholder for ref in refs}, {ref: 1 for ref in refs})
            try:
                plan = plan_variant(loaded, data, experiment.seeds[0], run_dir / f"seed-{experiment.seeds[0]}" / name
                                    / "curate", run_dir / "store", pm)
            except SpecError as exc:
                steps = data.get("steps") if isinstance(data.get("steps"), list) else []
                problems += [variant_problem(loaded, index, steps, origins[name], p) for p in exc.problems]
                continue
            except CurateError as exc:
                problems.append(Problem(f"variants.{name}", exc.message, exc.hint, loaded.line("variants", index)))
                continue
            labels = [p.label for p in plan.steps]
            plans[name] = labels
            target = experiment.train.step or labels[-1]
            if target not in labels:
                problems.append(Problem("train.step", f"variant '{name}' has no step labelled '{target}'",
                                        closest(target, labels), loaded.line("train", "step")))
                continue
            schema = plan.by_label(target).output_schema
            for column, wanted in ((experiment.train.caption, None), ("image", Image)):
                if column not in schema:
                    problems.append(Problem("train.caption" if wanted is None else "train",
                                            f"variant '{name}': step '{target}' has no column '{column}' to train on",
                                            closest(column, list(schema)),
                                            loaded.line("train", "caption") if wanted is None else loaded.line("train")))
    if problems:
        # In the order of the experiment file, then of the base spec's file (as `curate validate`).
        problems.sort(key=lambda p: (p.file is not None, p.line is None, p.line or 0))
        raise SpecError(problems, str(loaded.path))
    return {"order": order, "steps": plans}


def _placeholder_model(model: str, scratch: Path) -> str:
    """A local-dir: folder with the training model's config (no weights), standing in for a
    variant's model while validating: clip_score checks the architecture, nothing is loaded."""
    from curate_train.clip import CONFIG_FILE, resolve_model

    choice = resolve_model(model)
    if choice.config is None:
        return choice.name
    folder = scratch / "model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps({"model_cfg": choice.config}))
    return f"local-dir:{folder}"


# -- running ----------------------------------------------------------------------------------
def run(loaded: Loaded, run_dir: Path, seeds: list[int] | None = None, *, echo: Any = display.echo,
        eval_only: bool = False) -> dict[str, Any]:
    """Validate, then per seed run every variant (a finished one, with its result.json, is reused),
    then write the summary."""
    from curate.runfiles import remove_tree
    from curate_train.gaps import summarize

    experiment = loaded.experiment
    seeds = seeds or experiment.seeds
    checked = validate(loaded, run_dir)
    specs, order = variant_specs(loaded)[:2]
    started = time.monotonic()
    results: dict[int, dict[str, dict[str, Any]]] = {}
    for seed in seeds:
        models: dict[str, str] = {}
        rows: dict[str, int] = {}
        results[seed] = {}
        for name in order:
            folder = run_dir / f"seed-{seed}" / name
            done = folder / RESULT
            config = config_hash(specs[name], experiment.train)
            result, problem = saved_result(done, run_dir)
            if problem is not None:
                if eval_only:
                    raise CurateError(f"--eval-only: seed {seed}, variant '{name}': {done} {problem}",
                                      "run it again without --eval-only")
                echo(f"seed {seed} {name}: {done} {problem}; running it again")
                remove_tree(done)  # a link or a pipe by its name, never followed or opened
            if result is not None and result["config"] != config and not eval_only:
                echo(f"seed {seed} {name}: its spec or training settings changed since {done}; running it again")
                done.unlink()
                result = None
            if result is not None:
                if eval_only:
                    result = {**result, **evaluate(loaded, Path(result["model"]))}
                    done.write_text(json.dumps(result, indent=2) + "\n")
                    echo(f"seed {seed} {name}: re-evaluated")
                else:
                    echo(f"seed {seed} {name}: finished earlier ({done}), reused")
            elif eval_only:
                raise CurateError(f"--eval-only: seed {seed}, variant '{name}' has not finished ({done} is missing)",
                                  "run it first without --eval-only")
            else:
                echo(f"seed {seed} {name}: curating, training, evaluating in {folder}")
                result = {**run_variant(loaded, name, substitute(specs[name], models, rows), seed, folder,
                                        run_dir / "store"), "config": config}
                done.write_text(json.dumps(result, indent=2) + "\n")
                echo(json.dumps({k: v for k, v in result.items() if k not in ("steps", "model")}))
            models[name] = f"local-dir:{result['model']}"
            rows[name] = result["rows"]
            results[seed][name] = result
    summary = summarize(experiment.name, results, order, facts={
        "base_spec": _shown(loaded.base_path), "model": experiment.train.model,
        "samples_seen": sorted({r["samples_seen"] for by_variant in results.values() for r in by_variant.values()}),
        "batch_size": experiment.train.batch_size,
        "lr": experiment.train.lr, "caption": experiment.train.caption, "plans": checked["steps"],
        "seconds": round(time.monotonic() - started, 1)})
    out = run_dir / "experiment"
    out.mkdir(parents=True, exist_ok=True)
    from curate_train.gaps import markdown

    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(markdown(summary))
    return summary


# What run() reads back from a variant's result.json (besides its metrics, numbers, for the summary).
_RESULT_FIELDS: dict[str, tuple[type, ...]] = {"config": (str,), "model": (str,), "rows": (int,),
                                               "samples_seen": (int,), "steps": (list,)}
_RESULT_STEP_FIELDS: dict[str, tuple[type, ...]] = {"label": (str,), "cached": (bool,)}


def saved_result(done: Path, run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the variant's result.json, None) when it is one run() wrote; (None, None) when there is
    none; else (None, what is wrong with it). An experiment's folder may come from elsewhere: a
    result is read without waiting on a pipe or reading without end (curate.runfiles), only with
    the fields run() uses, and only naming a model inside ``run_dir`` (a variant's model is loaded
    by the variants after it, and evaluated, wherever a result says it lies)."""
    from curate.runfiles import confined, read_json, real_folders
    from curate.shapes import fields_problem

    if done.is_symlink():
        return None, "is a symbolic link, not the file the experiment wrote"
    if not done.exists():
        return None, None
    try:
        result = read_json(done)
    except (OSError, ValueError) as exc:
        return None, f"cannot be read ({exc})"
    problem = fields_problem(result, _RESULT_FIELDS, tuple(_RESULT_FIELDS), "")
    for index, step in enumerate(result.get("steps", []) if problem is None else []):
        problem = problem or fields_problem(step, _RESULT_STEP_FIELDS, tuple(_RESULT_STEP_FIELDS), f"steps[{index}]")
    if problem is None and confined(result["model"], real_folders([run_dir])) is None:
        problem = f"model {result['model']} is outside the experiment's folder {run_dir}"
    return (None, f"is damaged: {problem}") if problem else (result, None)


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is below it (summaries travel)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def config_hash(data: dict[str, Any], train: TrainSettings) -> str:
    """What a variant's trained model depends on besides the seed: its spec (``{model:...}``
    unresolved) and the training settings. A finished variant is reused only while it is unchanged."""
    import hashlib

    payload = json.dumps({"spec": data, "train": train.model_dump(mode="json")}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def run_variant(loaded: Loaded, name: str, data: dict[str, Any], seed: int, folder: Path,
                store: Path) -> dict[str, Any]:
    """Curate (engine, shared store), export, train for the budget, evaluate."""
    from curate.engine import Engine
    from curate.plugins import get_plugin_manager
    from curate.shards import iter_shard_files
    from curate.step import TableInput
    from curate_train.clip import model_dir, train_clip

    train = loaded.experiment.train
    begun = time.monotonic()
    pm = get_plugin_manager()
    plan = plan_variant(loaded, data, seed, folder / "curate", store, pm)
    manifest = Engine(plan, pm).run()
    target = plan.by_label(train.step or plan.steps[-1].label)
    files = iter_shard_files(plan.step_dir(target))
    rows = sum(_rows(f) for f in files)
    if rows == 0:
        raise CurateError(f"variant '{name}', seed {seed}: step '{target.label}' kept no rows to train on")
    repeats = math.ceil(train.samples_seen / rows)
    most = export_repeats_limit()
    if repeats > most:
        raise CurateError(f"variant '{name}', seed {seed}: step '{target.label}' kept {rows} rows, so "
                          f"{train.samples_seen} samples would export each row {repeats} times, more than the "
                          f"webdataset export's limit of {most}", "lower train.samples, or keep more rows")
    shards = export(TableInput(files, target.output_schema), folder / "shards", caption=train.caption,
                    repeats=repeats, seed=seed, store=plan.store_dir)
    import shutil

    shutil.rmtree(folder / "train", ignore_errors=True)  # open_clip_train refuses a log folder that exists
    checkpoint = train_clip(shards, folder / "train", name="clip", epochs=1, batch_size=train.batch_size,
                            lr=train.lr, warmup=train.warmup, seed=seed, model=train.model, threads=train.threads,
                            precision=train.precision, num_samples=train.samples_seen,
                            seeded_order=True)
    model = model_dir(checkpoint).resolve()
    steps = [{"label": r["label"], "fingerprint": r["fingerprint"], "cached": r["cached"],
              "rows_out": r.get("rows_out")} for r in manifest["steps"]]
    return {"variant": name, "seed": seed, "train_seed": seed, "export_seed": seed, "rows": rows,
            "samples_seen": train.samples_seen, "repeats": repeats, "model": str(model),
            **evaluate(loaded, model), "steps": steps, "seconds": round(time.monotonic() - begun, 1)}


def export_repeats_limit() -> int:
    """The most copies of a row the webdataset export writes (its ``repeats`` bound)."""
    from annotated_types import Le
    from curate_export.api import WebDatasetSink

    return next(int(m.le) for m in WebDatasetSink.Params.model_fields["repeats"].metadata if isinstance(m, Le))


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def export(table: Any, out: Path, *, caption: str, repeats: int, seed: int, store: Path) -> Path:
    from curate_export.api import WebDatasetSink

    from curate.sink import SinkContext

    ctx = SinkContext(run_dir=out.parent, spec_dir=out.parent, seed=seed, label=out.name, path=out.name)
    params = WebDatasetSink.Params(caption=caption, repeats=repeats, samples_per_shard=1000, seed=seed,
                                   store_dir=str(store))
    if out.exists():  # a variant cut off after its export: write it again
        import shutil

        shutil.rmtree(out)
    WebDatasetSink(params, ctx).write(table)
    return out


def evaluate(loaded: Loaded, model: Path) -> dict[str, Any]:
    """``{set}.{metric}`` of every eval set (accuracy and recall in %)."""
    import torch

    from curate_train.clip import load_clip
    from curate_train.evalsets import evaluate_sets, make_eval_set

    torch.manual_seed(0)
    sets = [make_eval_set(fields, f"eval[{i}]", base=loaded.path.parent) for i, fields in enumerate(loaded.experiment.eval)]
    network, preprocess, tokenizer = load_clip(f"local-dir:{model}")
    flat: dict[str, Any] = {}
    for set_name, metrics in evaluate_sets(network, preprocess, tokenizer, sets, loaded.untrusted).items():
        for key, value in metrics.items():
            if key.startswith(("acc", "i2t", "t2i")):
                flat[f"{set_name}.{key}"] = round(100 * value, 2)
            elif key == "chance":
                flat[f"{set_name}.chance"] = round(100 * value, 2)
    return flat
