"""A sink writes a step's output somewhere a training client reads it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from curate.params import Params
from curate.step import TableInput


@dataclass
class SinkContext:
    run_dir: Path
    spec_dir: Path
    seed: int
    label: str
    path: str = ""  # the spec's outputs[].path

    @property
    def output_path(self) -> Path:
        return self.resolve(self.path)

    def resolve(self, path: str | Path) -> Path:
        """Relative output paths live in the run directory, beside everything else of the run."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.run_dir / p)


class Sink:
    """Base class of sinks. Subclass, set ``format`` and ``Params``, implement :meth:`write`."""

    format: ClassVar[str]
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    reads: ClassVar[dict] = {}

    class Params(Params):
        pass

    def __init__(self, params: Params, ctx: SinkContext):
        self.params = params
        self.ctx = ctx

    def input_columns(self) -> dict:
        """The columns :meth:`write` reads, checked at plan time like a step's ``reads``, so a
        missing column fails before any step runs. Override when params name them."""
        return dict(self.reads)

    def preflight(self) -> None:
        """Raise a CurateError if the output cannot be written (a folder of someone else's files);
        called before the run's first step, so the problem shows before hours of work."""

    def write(self, table: TableInput) -> dict[str, Any]:
        """Write every row; return facts for the manifest (``{"path": ..., "rows": ...}``)."""
        raise NotImplementedError
