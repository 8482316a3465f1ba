"""A source turns the spec's ``source:`` section into lazy frames of raw rows.

The engine maps columns to the canonical names, adds the stable ``uid`` and shards the result;
a source only has to say what its rows are and what identifies its data (for the cache).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from curate.params import Params


@dataclass
class SourceContext:
    run_dir: Path
    spec_dir: Path  # relative paths in the spec are relative to the spec file
    seed: int
    path: str | None = None  # the spec's source.path, for file-based sources
    # A spec from someone else (run.untrusted): a file source reads only files inside the working
    # directory (curate.runfiles.outside_working_directory), as its SQL reads no file at all.
    untrusted: bool = False
    # Where this run keeps its rows (``run.cache_dir``, else RUN_DIR/store): a source that lists a
    # folder holding the run directory or the store does not read curate's own files as data.
    store: Path | None = None
    # Bytes the run leaves free on its disk (run.min_free_disk): a source that writes (a generated
    # world) stops before it fills the disk.
    min_free_disk: int = 0
    # The source's columns the run reads when ``source.keep`` names them (the mapped ones, url,
    # alt_text, uid, and those kept); None: every column. A file source's files must agree on these
    # only: a day's file with a column more or less elsewhere is read like the others.
    carried: frozenset[str] | None = None

    def resolve(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.spec_dir / p)


class Source:
    """Base class of sources. Subclass, set ``format`` and ``Params``, implement :meth:`scan`."""

    format: ClassVar[str]
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None

    class Params(Params):
        pass

    def __init__(self, params: Params, ctx: SourceContext):
        self.params = params
        self.ctx = ctx

    @contextmanager
    def session(self) -> Iterator[None]:
        """Held open for the whole run: start a server, mount a bucket… Default: nothing."""
        yield

    def fingerprint(self) -> str:
        """What identifies the data. Default: params. File sources add file sizes and mtimes."""
        payload = {"format": self.format, "version": self.version, "params": self.params.model_dump(mode="json")}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def schema(self) -> dict[str, pl.DataType]:
        """Column names and types, cheaply (no full read). Default: the first frame's schema."""
        for frame in self.scan():
            return dict(frame.collect_schema())
        return {}

    def scan(self) -> Iterator[pl.LazyFrame]:
        """Lazy frames in a stable order (one per file, say). Their order defines row order."""
        raise NotImplementedError

    def parquet_files(self) -> list[Path] | None:
        """The Parquet files :meth:`scan` reads, in its order, when the engine may read them in
        place (no copy first); None when the source is not plain Parquet files."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"format": self.format, **self.params.model_dump(mode="json")}
