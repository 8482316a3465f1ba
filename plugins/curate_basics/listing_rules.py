"""What a file source's path lists, and what it refuses there: curate's own folders, files
outside the working directory (untrusted specs), links to folders and to nothing, special files,
files compressed in a way curate does not read, and folders named like Hive partitions."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from curate.errors import SourceError
from curate.runfiles import UNTRUSTED_READS, confined, describe_mode, holds_a_run, pattern_characters, real_folders
from curate_basics import compressed

logger = logging.getLogger(__name__)


class CurateFolders:
    """curate's own folders among a source's files: this run's directory and store (a glob or a
    folder listing skips them), and, in a folder listing, any other run directory below the folder
    (``curate.runfiles.holds_a_run``). A source at ``.`` read the previous run's stored shards and
    outputs as data; a glob that names files inside another run (``runs/*/curated.parquet``) still
    reads them."""

    def __init__(self, run_dir: Path, store: Path | None):
        self.mine = {os.path.realpath(run_dir), *([os.path.realpath(store)] if store is not None else [])}
        self.folders: dict[Path, bool] = {}  # folders below a listed folder: a run's or not
        self.parents: dict[Path, bool] = {}  # folders of a glob's files: in this run's directory or store

    def own(self, path: Path) -> bool:
        """Whether ``path`` lies in this run's directory or store."""
        if path.parent not in self.parents:  # a glob's files share few folders: resolve each once
            real = os.path.realpath(path.parent)
            self.parents[path.parent] = any(real == mine or real.startswith(mine + os.sep) for mine in self.mine)
        return self.parents[path.parent]

    def within(self, path: Path, root: Path) -> bool:
        """Whether ``path``, found below ``root``, lies in a curate run directory or store."""
        for folder in list(path.relative_to(root).parents)[:-1]:  # the folders below root, nearest first
            here = root / folder
            if here not in self.folders:
                self.folders[here] = os.path.realpath(here) in self.mine or holds_a_run(here)
            if self.folders[here]:
                return True
        return False


def refuse_outside(raw: str, paths: list[Path]) -> None:
    """An untrusted spec's files (links resolved) must lie inside the working directory: a link
    among them, or a spec kept elsewhere whose relative path resolves there, is refused."""
    cwd = real_folders([os.getcwd()])
    for path in paths:
        if confined(path, cwd) is None:
            raise SourceError(f"source.path {raw!r}: {path} lies outside the working directory "
                              f"({os.path.realpath(path)}); "
                              f"{UNTRUSTED_READS}",
                              "run curate from the folder that holds the spec and its data, copy the data there, "
                              "or run the spec without --untrusted if you trust it")


def walk(raw: str, root: Path, skip: CurateFolders) -> Iterator[Path]:
    """Every file below ``root``. A link to a folder is refused, naming it: ``rglob`` skipped them
    without a word (a folder read fewer rows than a ``**`` glob over the same files), and following
    them let a link to ``/`` in a stranger's data folder list the whole machine (a link-following
    listing ran past 150 s, the untrusted check coming only after it)."""
    for folder, folders, files in os.walk(root):
        folders[:] = [name for name in folders if not skip.within(Path(folder) / name / "-", root)]  # curate's own
        for name in folders:
            if (linked := Path(folder) / name).is_symlink():
                raise SourceError(f"source.path {raw!r}: {linked} is a link to a folder ({os.readlink(linked)}), "
                                  "and curate does not follow links to folders below a folder or a ** pattern "
                                  "(one to / would list the whole machine)",
                                  "move or copy the files into the folder, or remove the link")
        yield from (Path(folder) / name for name in files)


def warn_partitions(root: Path, files: list[Path]) -> None:
    """Folders named like ``lang=en`` (Hive partitioning, as Spark writes it) hold a value for the
    rows of their files, which curate does not read: the column was lost without a word."""
    for path in files:
        text = str(path)
        if "=" not in text[:text.rfind("/")]:  # no folder of it is named so: no Path made (most listings)
            continue
        for part in path.relative_to(root).parts[:-1]:
            key, equals, _ = part.partition("=")
            if equals and key:
                logger.warning("%s: folders named like %r (Hive partitioning) are not read as a column '%s'; "
                               "add it to the files as a column if the run needs it", root, part, key)
                return


def refuse_folder_links(raw: str, root: Path, skip: CurateFolders) -> None:
    """A link to a folder below where a ``**`` pattern starts, refused as :func:`walk` refuses it."""
    if root.is_dir():
        for _ in walk(raw, root, skip):
            pass


def static_prefix(path: Path) -> Path:
    """The folder a pattern's matches all lie below: its parts before the first with a pattern."""
    parts = []
    for part in path.parts:
        if pattern_characters(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def refuse_compressed(raw: str, paths: list[Path], by_name: bool) -> None:
    """A file compressed in a way curate does not read (a zip archive, lz4's legacy format:
    ``curate_basics.compressed``) is refused naming it, when it is listed: a folder
    listing (``by_name``) tells it by its name's ending, a glob or a file named alone by its first
    bytes (Polars read one, while every check around the reader saw the compressed bytes)."""
    for path in paths:
        if by_name:
            kind = compressed.named_compression(path.name)
        elif path.name.lower().endswith((".parquet", ".pq")):  # Parquet compresses its pages itself
            continue
        else:
            kind = compressed.compression_of(path)
        refused = compressed.unreadable(kind, str(path)) if kind is not None else None
        if refused is not None:
            raise SourceError(f"source.path {raw!r}: {refused.message}", refused.hint)


def beside_their_copies(paths: Iterable[Path]) -> list[Path]:
    """``paths`` less the compressed files whose decompressed copy is among them (``gunzip -k``
    leaves both: each row was read twice)."""
    paths = list(paths)
    names = set(paths)
    kept = []
    for path in paths:
        if compressed.named_compression(path.name) is not None and path.with_suffix("") in names:
            logger.warning("%s is left out: its decompressed copy %s beside it is read", path,
                           path.with_suffix(""))
            continue
        kept.append(path)
    return kept


def refuse_special(raw: str, paths: list[Path]) -> None:
    """A FIFO, device or socket is no data file: reading a FIFO waits forever for a writer; a link
    to nothing was left out of the listing without a word."""
    for path in paths:
        try:
            mode = path.stat().st_mode
        except OSError:
            if path.is_symlink():
                raise SourceError(f"source.path {raw!r}: {path} is a link to {os.readlink(path)}, which does not exist",
                                  "restore what it points at, or remove the link") from None
            continue
        if stat.S_ISREG(mode):
            continue
        raise SourceError(f"source.path {raw!r}: {path} is {describe_mode(mode)}, not a regular file",
                          "point source.path at regular files (copy a stream to a file first), "
                          "or move the special file out of the directory")
