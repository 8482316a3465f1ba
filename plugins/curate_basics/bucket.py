"""A file source's objects in a bucket (``s3://`` or another fsspec URL): listed once, their
columns checked at validation without downloading them (``remote_schemas``), copied locally for
the readers, and named by their URLs, not their local copies, in every message."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from curate.errors import SourceError
from curate.runfiles import remove_tree
from curate_basics.file_schemas import common_schema

if TYPE_CHECKING:
    from curate.remote import Listed


class BucketObjects:
    """Mixed into ``FileSource``: what it does when ``source.path`` is a URL. Uses the source's
    ``ctx``, ``format``, ``extensions``, ``_accepts``, ``kind_of``, ``object_prefix``,
    ``_checked_schema`` and ``schema``."""

    def _remote_objects(self, url: str) -> list[tuple[str, Listed]]:
        """The objects ``url`` names (a glob over a bucket prefix, a prefix, or one object), listed
        once per source object."""
        cached = getattr(self, "_listing", None)
        if cached is not None and cached[0] == url:
            return cached[1]
        from curate import remote

        listed = remote.list_files(url, lambda name: self._accepts(Path(name)))
        if not listed:
            raise SourceError(f"source.path {url!r} matched no {self.format} objects",
                              f"expected objects ending in {', '.join(self.extensions) or 'a known extension'}")
        self._listing = (url, listed)
        return listed

    def _remote_files(self, url: str) -> list[tuple[Path, tuple[str, str]]]:
        """Local copies of the objects (in the run directory's ``tmp/source/``, kept while their
        ETag and size stay the same), so the readers see plain files; with each, (url, version)."""
        from curate import remote

        cache_dir = self.ctx.run_dir / "tmp" / "source"
        downloaded = [(remote.download(name, entry, cache_dir), (name, remote.version_of(entry)))
                      for name, entry in self._remote_objects(url)]
        self._name_objects((local, name) for local, (name, _) in downloaded)
        return downloaded

    def _remote_schema(self, url: str) -> dict[str, pl.DataType]:
        """Every object's schema, as every local file's (``curate_basics.remote_schemas``: footers
        and first lines, not the data), up to that module's bounds; the run checks the rest."""
        from curate_basics import remote_schemas

        objects = self._remote_objects(url)
        kinds = [self.kind_of(Path(name))[0] for name, _ in objects]
        prefixes = [self.object_prefix(name, kind) for (name, _), kind in zip(objects, kinds)]
        sizes = [remote_schemas.size_of(name, entry) for name, entry in objects]
        costs = [min(size, prefix[0] if prefix else remote_schemas.TAIL) for size, prefix in zip(sizes, prefixes)]
        count = remote_schemas.checked_count(url, objects, costs)
        schemas: dict[int, dict[str, pl.DataType]] = {}
        parquet = [i for i in range(count) if kinds[i] == "parquet"]
        schemas.update(zip(parquet, remote_schemas.parquet_schemas([objects[i] for i in parquet])))
        text = [i for i in range(count) if kinds[i] != "parquet"]
        copy_dir = self.ctx.run_dir / "tmp" / "source" / "prefixes"
        copies = remote_schemas.text_copies([objects[i] for i in text], [prefixes[i] for i in text],
                                            self.ctx.run_dir / "tmp" / "source", copy_dir)
        try:
            for i, local in zip(text, copies):
                self._name_objects([(local, objects[i][0])])
                schemas[i] = self._checked_schema(local)
        finally:
            remove_tree(copy_dir)
        schema = common_schema([(objects[i][0], schemas[i]) for i in range(count)], self.ctx.carried)
        self._planned = schema
        return schema

    def _check_downloaded(self, downloaded: list[tuple[Path, tuple[str, str]]]) -> None:
        """Every downloaded object against the schema planned from what validation checked: an
        object it did not reach (or one rewritten since) with other columns or types is refused
        here, before any row is read, instead of having them dropped or failing a cast mid-run."""
        if self.__dict__.get("_downloaded_checked"):
            return
        planned = self.__dict__.get("_planned") or self.schema()
        first = downloaded[0][1][0]
        for local, (name, _) in downloaded:
            schema = common_schema([(first, planned), (name, self._checked_schema(local))], self.ctx.carried)
            widened = {column: dtype for column, dtype in schema.items() if planned[column] != dtype}
            if widened:
                shown = ", ".join(f"{column!r} is {dtype} in {name}" for column, dtype in widened.items())
                raise SourceError(
                    f"the objects of the source disagree: {shown}, but {', '.join(str(planned[c]) for c in widened)} "
                    f"in the objects validation checked (from {first})",
                    "every object of one source needs the same columns with the same types: rewrite the odd "
                    "object, or move it out of source.path",
                )
        self._downloaded_checked = True

    def _name_objects(self, pairs: Iterable[tuple[Path, str]]) -> None:
        self.__dict__.setdefault("_urls", {}).update((str(local), name) for local, name in pairs)

    def name_of(self, path: Path) -> str:
        """How messages name a file: an object in a bucket by its URL, not by its local copy."""
        return self.__dict__.get("_urls", {}).get(str(path), str(path))

    def _renamed(self, error: SourceError) -> SourceError:
        """``error`` naming objects in a bucket by their URLs instead of their local copies."""
        message, hint = error.message, error.hint
        for local, name in self.__dict__.get("_urls", {}).items():
            if local in message or (hint and local in hint):
                message, hint = message.replace(local, name), hint and hint.replace(local, name)
        return error if (message, hint) == (error.message, error.hint) else SourceError(message, hint)

    @contextmanager
    def _objects_named(self) -> Iterator[None]:
        try:
            yield
        except SourceError as error:
            raise self._renamed(error) from None
