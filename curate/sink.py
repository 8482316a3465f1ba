"""A sink writes a step's output somewhere a training client reads it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from curate.params import Params
from curate.step import TableInput

if TYPE_CHECKING:
    from curate.diskspace import GuardedFile, SpaceGuard
    from curate.images import ImageFolders


@dataclass
class SinkContext:
    run_dir: Path
    spec_dir: Path
    seed: int
    label: str
    path: str = ""  # the spec's outputs[].path
    # The only folders the images rows name may be read from: pass as ``within=`` to curate.images.
    # Set for a spec run with --untrusted (curate.images.untrusted_image_folders); None: anywhere.
    image_folders: ImageFolders | None = None
    # run.min_free_disk in bytes, set by the engine before the sink writes (0: no check)
    min_free_disk: int = 0

    def space_guard(self) -> SpaceGuard:
        """For a sink that writes its files itself: call the guard's ``wrote(n)`` before writing
        ``n`` bytes; it raises :class:`curate.diskspace.DiskNearlyFull` rather than take the disk
        holding :attr:`output_path` under ``run.min_free_disk``. (The engine removes nothing: write
        inside ``atomic_path`` or an export folder, which go when the sink raises.)"""
        from curate.diskspace import SpaceGuard, output_fix

        return SpaceGuard(self.output_path, self.min_free_disk, f"writing output '{self.path}'",
                          output_fix(self.path))

    @contextmanager
    def guarded_file(self, path: Path) -> Iterator[GuardedFile]:
        """``path`` open for binary writing, guarded as :meth:`space_guard` says: hand it to Polars'
        ``sink_parquet`` / ``sink_csv`` / ``sink_ndjson`` (the same bytes as a path) or write to it.
        Stopped for space, the guard's error is what is raised, whatever the writer wrapped it in."""
        from curate.diskspace import GuardedFile

        handle = GuardedFile(path, self.space_guard())
        try:
            yield handle
        except BaseException:
            if handle.guard.error is not None:
                raise handle.guard.error from None
            raise
        finally:
            handle.close()

    @property
    def remote(self) -> bool:
        """The output goes to object storage (``s3://…``): sinks write to :attr:`output_path`, a
        local staging path in the run directory, and the engine uploads it when the sink is done."""
        from curate.remote import is_url

        return is_url(self.path)

    @property
    def output_path(self) -> Path:
        if self.remote:
            return self.staging_dir / (self.path.rstrip("/").rsplit("/", 1)[-1] or "output")
        return self.resolve(self.path)

    @property
    def staging_dir(self) -> Path:
        import hashlib

        return self.run_dir / "tmp" / "outputs" / hashlib.sha256(self.path.encode()).hexdigest()[:16]

    def resolve(self, path: str | Path) -> Path:
        """Relative output paths live in the run directory, beside everything else of the run."""
        from curate.remote import is_url

        if is_url(str(path)):
            raise ValueError(f"{path} is a URL, not a local path")
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
    # What the output path names: "file" (one file, written aside and renamed over it), "folder",
    # or None (unknown). Planning refuses a path that cannot be one (a folder for a "file" sink).
    path_kind: ClassVar[str | None] = None

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
