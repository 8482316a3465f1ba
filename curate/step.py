"""A step is a small class that declares its contract: params, columns read, columns written.

The engine checks the contract at plan time (reads ⊆ upstream schema, so a typo fails before
any GPU minute is spent) and after each shard (declared writes are present). A step never knows
which executor runs it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import polars as pl

from curate.diskspace import parse_size, spill_allowance
from curate.errors import MissingDependencyError
from curate.params import Params
from curate.parquet_nan import read_option
from curate.schema import Schema

if TYPE_CHECKING:
    import duckdb

    from curate.images import ImageFolders


# DuckDB's memory limit per table-wide query when a spec sets no ``run.memory_limit``; beyond it
# DuckDB spills to the run directory. It was 4GB: a 100M-row relational run then held 4.2 GB where
# a 10M one held 0.85 GB, DuckDB's hash tables and sorts growing to the limit (benchmarks/README.md).
DEFAULT_MEMORY_LIMIT = "256MB"


@dataclass
class StepContext:
    """What a running step may know about its surroundings."""

    run_dir: Path
    label: str
    seed: int
    artifacts: Path  # the step's own directory for sidecar files (embeddings, models, indexes)
    shard: int | None = None
    progress: Any = None  # callable(advance_rows: int) or None
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    # Bytes the run leaves free on its disk (run.min_free_disk; 0: no check): shard writes stop
    # and DuckDB spills no further once less is free (curate.diskspace).
    min_free_disk: int = 0
    extras: dict[str, Any] = field(default_factory=dict)
    # The only folders the images rows name may be read from: pass as ``within=`` to curate.images.
    # Set for a spec run with --untrusted (curate.images.untrusted_image_folders); None: anywhere.
    image_folders: ImageFolders | None = None

    def advance(self, rows: int) -> None:
        if self.progress is not None:
            self.progress(rows)

    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """A fresh in-memory DuckDB connection that spills to the run directory, interrupted when
        the run gets a stopping signal (:func:`curate.duck.connect`)."""
        from curate.duck import connect

        tmp = self.run_dir / "tmp" / "duckdb"
        tmp.mkdir(parents=True, exist_ok=True)
        con = connect()
        con.execute(f"SET memory_limit='{memory_setting(self.memory_limit)}'")
        # Quotes doubled: a run directory under "/home/o'brien" is a path, not an SQL error.
        con.execute("SET temp_directory='" + tmp.as_posix().replace("'", "''") + "'")
        con.execute("SET preserve_insertion_order=true")
        allowance = spill_allowance(tmp, self.min_free_disk)
        if allowance is not None:
            con.execute(f"SET max_temp_directory_size='{allowance}B'")
        return con


@dataclass
class TableInput:
    """The whole upstream table, as ordered Parquet shards, for steps that need every row."""

    files: list[Path]
    schema: Schema

    def scan(self) -> pl.LazyFrame:
        if not self.files:
            return pl.LazyFrame(schema=self.schema)
        return pl.scan_parquet([str(f) for f in self.files])

    def duckdb_relation_sql(self) -> str:
        """SQL for a relation over all shards, with ``_shard``/``_row`` giving the input order."""
        if not self.files:
            raise ValueError("empty input has no relation; check TableInput.files first")
        paths = ", ".join("'" + f.as_posix().replace("'", "''") + "'" for f in self.files)
        return f"read_parquet([{paths}], filename = '_shard', file_row_number = true{read_option()})"


class Step:
    """Base class of every step. Subclass, set the class attributes, implement one method.

    ``scope = "shard"``: implement :meth:`process_shard`; rows are processed shard by shard and
    a row's result may depend only on that row (executors may run shards anywhere, in any order).
    ``scope = "table"``: implement :meth:`process_table`; the step sees every row (dedup, top-k).

    To drop rows, return them with a non-null ``_drop_reason`` column (and ``_duplicate_of``
    for dedups); the engine moves them to the step's ``dropped`` table so nothing is lost.

    ``scope`` and ``drops_rows`` are class attributes. A step whose scope or dropping depends on
    its params overrides the attribute with a read-only property computed from ``self.params``
    (``sample``: by fraction per shard, by count per table); it never assigns them per instance.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"  # bump when the output for the same params changes
    requires: ClassVar[tuple[str, ...]] = ()  # importable module names
    extra: ClassVar[str | None] = None  # the pip extra that provides them
    scope: ClassVar[Literal["shard", "table"]] = "shard"
    reads: ClassVar[Schema] = {}
    writes: ClassVar[Schema] = {}
    drops_rows: ClassVar[bool] = False
    uses_model: ClassVar[bool] = False  # executors keep one instance per worker (actor pools)
    random: ClassVar[bool] = False  # draws from the run seed: the seed joins the step's fingerprint
    # process_shard keeps no state between calls, so executors may run shards on several threads
    # of one process at once (polars and DuckDB release the GIL): no process start-up, no pickling.
    thread_safe: ClassVar[bool] = False
    # Set from ``run.untrusted`` / ``--untrusted``: steps that run user SQL disable DuckDB's
    # external access (files, network, extensions) when this is on.
    untrusted: bool = False
    # Seconds one query of user SQL may run (``curate.duck.sql_seconds``); None: no limit.
    sql_timeout: float | None = None

    class Params(Params):
        pass

    def __init__(self, params: Params | None = None, *, label: str | None = None):
        self.params = params if params is not None else type(self).Params()
        self.label = label or self.name

    # -- contract -------------------------------------------------------------------------
    @classmethod
    def missing_modules(cls) -> list[str]:
        return [m for m in cls.requires if importlib.util.find_spec(m) is None]

    @classmethod
    def check_requirements(cls) -> None:
        missing = cls.missing_modules()
        if missing:
            raise MissingDependencyError(f"step '{cls.name}'", missing, cls.extra)

    def input_columns(self) -> Schema:
        """Columns (and types) this step reads. Override when they depend on params."""
        return dict(self.reads)

    def output_schema(self, input_schema: Schema) -> Schema:
        """The schema after this step. Default: input plus declared writes."""
        out = dict(input_schema)
        out.update(self.output_columns())
        return out

    def output_columns(self) -> Schema:
        """Columns this step writes. Override when they depend on params."""
        return dict(self.writes)

    def fingerprint_extra(self) -> dict[str, Any]:
        """What else decides the output besides params: e.g. a hash of the model weights a
        checkpoint path points at, so retrained weights invalidate the cache."""
        return {}

    def places(self) -> list[tuple[str, str]]:
        """``(param, path or URL)`` for each file, folder or storage URL this step's params name
        (:meth:`curate.params.Params.places`), which a spec run with ``--untrusted`` may name only
        inside the working directory (a URL: under an ``--allow-remote`` prefix); a step with one
        that may not is refused at plan time, before its :meth:`plan_check` reads anything.
        Override when params of its own params name places (a plugin's strategy's options)."""
        return self.params.places()

    def plan_check(self, input_schema: Schema) -> list[str]:
        """Extra plan-time checks (e.g. an SQL expression binds). Return problems as text."""
        return []

    def plan_check_params(self) -> list[str]:
        """The checks of :meth:`plan_check` that need no input schema (a query is one statement),
        run instead of it when the schema is not known (the source cannot be read, or an untrusted
        spec's source is refused), so that validation still says every problem it can."""
        return []

    def plan_check_upstream(self, upstream: list[Step]) -> list[str]:
        """Plan-time checks against the steps before this one (nearest last), e.g. a param that
        must agree with an upstream step's. Return problems as text, or raise a CurateError."""
        return []

    # -- running --------------------------------------------------------------------------
    def setup(self, ctx: StepContext) -> None:
        """Load models or other expensive state; called once per worker before any shard."""

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        raise NotImplementedError(f"step '{self.name}' has scope 'shard' but no process_shard()")

    def process_table(self, table: TableInput, ctx: StepContext) -> Iterator[pl.DataFrame]:
        raise NotImplementedError(f"step '{self.name}' has scope 'table' but no process_table()")

    def failed_to_retry(self, step_dir: Path) -> int:
        """Rows of this step's finished output whose failure another try may fix (a download that
        timed out); ``curate run --retry-failed`` re-runs a step that has some, with
        ``ctx.extras["retry_failed"]`` set, and recomputes every step after it. Default: none."""
        return 0

    def result_problem(self, ctx: StepContext) -> tuple[str, str] | None:
        """(message, hint) when the step's finished result is not worth keeping as complete (a
        download whose servers were down fetched nothing): the run fails with it, the step is not
        marked complete, and its next run re-runs it with ``ctx.extras["retry_failed"]`` set, as
        ``curate run --retry-failed`` does. Called after the last shard, with the context
        :meth:`summary` gets. A step fused with others (``curate.fusion``) fails its whole group:
        no member is marked complete, and the next run computes every shard of the group again.
        Default: None."""
        return None

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        """Facts worth keeping in the manifest after the step ran (thresholds used, …)."""
        return {}

    def lineage_problem(self, lost: int, invented: int, repeated: int, example: str | None) -> tuple[str, str] | None:
        """The step's own (message, hint) when its output broke the lineage: ``lost`` input rows
        neither kept nor dropped, ``invented`` rows with a uid not in the input (``example``: one
        of them), ``repeated`` uids more than once. A step that runs its user's code (a query)
        says what that code did; None (the default): the engine blames the step's plugin. Called
        only when the engine's check fails, so it costs nothing otherwise."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r} {self.params!r}>"


def memory_setting(limit: str | int) -> str:
    """``run.memory_limit`` as DuckDB's SET takes it: a whole number of bytes, so nothing of the
    spec's text reaches the statement (ValueError unless it is a size, as the spec checks)."""
    return f"{parse_size(limit)}B"
