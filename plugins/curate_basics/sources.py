"""File sources: Parquet, CSV, TSV, JSON Lines — a file, a glob, or a directory of them."""

from __future__ import annotations

import functools
import glob as globlib
import hashlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

import polars as pl
from pydantic import Field, field_validator

from curate.display import visible
from curate.errors import SourceError
from curate.footers import arrow_footer, polars_schema
from curate.params import Params
from curate.runfiles import pattern_characters, read_as_pattern, real_paths
from curate.remote import is_url
from curate.source import Source
from curate_basics import compressed
from curate_basics.bucket import BucketObjects
from curate_basics.csvfields import MAX_BLANK_LINES, csv_fields
from curate_basics.decode import CHUNK, LOSSY, check_encoding, codec_to_transcode, decoded_prefix, transcode
from curate_basics.file_schemas import common_schema
from curate_basics.headscan import Head, carried
from curate_basics.listing_rules import (
    CurateFolders,
    beside_their_copies,
    refuse_compressed,
    refuse_folder_links,
    refuse_outside,
    refuse_special,
    static_prefix,
    walk,
    warn_partitions,
)
from curate_basics.locate import JsonScan
from curate_basics.parquet_text import first_bad_string, says_not_utf8, scan_lossy
from curate_basics.rowsize import MAX_ROW_BYTES, first_long_row

logger = logging.getLogger(__name__)

# Bytes of each JSON Lines file read at validation to find values of mixed types; Polars infers
# the file's schema from the whole lines within them (all of them, in a file this small, and at
# least JSONL_INFER_MIN_LINES). The lines past them are checked against it when the file is read.
JSONL_SCAN_LIMIT = 32 * 1024 * 1024
JSONL_INFER_MIN_LINES = 100
EXTENSIONS = {
    ".parquet": "parquet", ".pq": "parquet",
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
}


class FileSource(BucketObjects, Source):
    """Base of the file sources: resolve the path to an ordered list of files."""

    extensions: ClassVar[tuple[str, ...]] = ()

    def files(self) -> list[Path]:
        """The source's files in reading order, listed once per source: planning, the source's
        fingerprint and its read each asked again (~0.4 s per listing of 2,000 files), and
        one listing keeps them reading the same files."""
        listed = self.__dict__.get("_listed")
        if listed is None:
            listed = self.__dict__["_listed"] = self._list_files()
        return list(listed)

    def _list_files(self) -> list[Path]:
        raw = self.ctx.path
        if not raw:
            raise SourceError(f"a '{self.format}' source needs source.path", "a file, a glob or a directory")
        if is_url(raw):
            downloaded = self._remote_files(raw)
            self._check_downloaded(downloaded)
            return [local for local, _ in downloaded]
        path = self.ctx.resolve(raw)
        skip = CurateFolders(self.ctx.run_dir, self.ctx.store)
        if pattern_characters(raw):  # Python's glob takes the same three characters for a pattern
            if "**" in raw:  # glob's ** follows links to folders: one to / listed the machine for minutes
                refuse_folder_links(raw, static_prefix(path), skip)
            matched = [Path(p) for p in sorted(globlib.glob(str(path), recursive=True))]
            matched = [p for p in matched if not skip.own(p)]
            refuse_special(raw, [p for p in matched if not p.is_dir()])
            refuse_compressed(raw, [p for p in matched if not p.is_dir()], by_name=False)
            found = [p for p in matched if p.is_file()]
        elif path.is_dir():
            # Sorted as text, as a glob's matches and a bucket's listing are: Path's own order compares
            # folder by folder ('a/x' before 'a-b/y'), so a folder and a glob over the same files read
            # them in different orders, and keep: first kept other rows.
            listed = list(walk(raw, path, skip))
            warn_partitions(path, listed)
            matched = sorted(beside_their_copies(p for p in listed if self._accepts(p)), key=str)
            refuse_compressed(raw, matched, by_name=True)
            refuse_special(raw, matched)
            found = [p for p in matched if p.is_file()]
        elif path.exists():
            refuse_special(raw, [path])
            refuse_compressed(raw, [path], by_name=False)
            found = [path]
        else:
            raise SourceError(f"source.path {raw!r} does not exist (looked for {path})",
                              f"a relative path is read from {self.ctx.spec_dir}: the spec file's directory, or "
                              "the working directory for a spec read from stdin or given as text or data")
        if not found:
            raise SourceError(f"source.path {raw!r} matched no {self.format} files (looked in {path})",
                              f"expected files ending in {', '.join(self.extensions) or 'a known extension'}")
        for file in found:
            if (why := read_as_pattern(file.absolute())) is not None:
                raise SourceError(f"source.path {raw!r}: {why}",
                                  "rename the file, or the folders above it, to a path without *, ? or [ "
                                  "(a pattern in source.path itself is fine: curate expands it first)")
        if self.ctx.untrusted:
            refuse_outside(raw, found)
            limit = getattr(self.params, "max_row_bytes", MAX_ROW_BYTES)
            if limit > MAX_ROW_BYTES:
                raise SourceError(f"an untrusted spec may not raise source.params.max_row_bytes past its default of "
                                  f"{MAX_ROW_BYTES:,} bytes (it asks {limit:,}: a row is held whole in memory)",
                                  "remove it, or review the spec and run it without --untrusted")
        return found

    def _accepts(self, path: Path) -> bool:
        return compressed.text_suffix(path) in self.extensions  # a.jsonl.gz is a JSON Lines file

    @staticmethod
    def object_prefix(name: str, kind: str) -> tuple[int, int] | None:
        """What validation fetches of an object in a bucket of ``kind``: None for Parquet (its
        footer), else its first whole lines, up to so many bytes and at least so many lines (CSV:
        the header; JSON Lines: the lines the schema is read from, as the run reads it from the
        downloaded file)."""
        prefixes = {"csv": (CHUNK, 1), "tsv": (CHUNK, 1), "jsonl": (JSONL_SCAN_LIMIT, JSONL_INFER_MIN_LINES)}
        if kind == "parquet":
            return None
        if kind not in prefixes:
            raise _unknown_format(name)
        return prefixes[kind]

    def fingerprint(self) -> str:
        """Params plus each file's path, size, modification time and change time (not its bytes:
        too slow); for objects in a bucket, their URL, ETag and size.

        The change time (``st_ctime_ns``) is the kernel's: every write of the file sets it, and no
        tool can set it back. Size and modification time alone missed a file rewritten with the same
        size and its old modification time (``rsync -t``, ``cp -p``, a tar unpacked over it, a build
        that pins file times): the cache served the old file's rows. A ``chmod`` or a copy moves it
        too, and the source is then read again."""
        if is_url(self.ctx.path):
            from curate import remote

            objects = [(name, remote.version_of(entry)) for name, entry in self._remote_objects(self.ctx.path or "")]
            payload = {"format": self.format, "params": self.params.fingerprint_dict(), "objects": objects}
            return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        # Absolute paths: relative ones follow the working directory, so the same spec run from
        # another directory (or resumed from one) missed the cache and recomputed everything.
        files = self.files()
        stats = [(real, *_stat_key(p)) for real, p in zip(real_paths(files), files)]
        payload = {"format": self.format, "params": self.params.fingerprint_dict(), "files": stats}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def schema(self) -> dict[str, pl.DataType]:
        """Every file's schema (cheaply: Parquet footers, CSV headers), which must agree: a file
        with other columns or types had them dropped or cast when the first file's were used."""
        if is_url(self.ctx.path):
            return self._remote_schema(self.ctx.path or "")
        return common_schema([(path, self._checked_schema(path)) for path in self.files()], self.ctx.carried)

    def _checked_schema(self, path: Path) -> dict[str, pl.DataType]:
        """One file's schema, its reader's errors said with the file, line and column (a
        compressed file's: of its first lines, decompressed)."""
        with self._objects_named():
            reader = self._jsonl_reader(path)
            before = _stat_key(path) if reader is not None else None  # the file its first lines are from
            read = self._plain(path, head=True)
            try:
                schema = self._read_schema(read)
                if read != path and reader is not None and before is not None:
                    reader.keep_head(path, before, read)
                return schema
            finally:
                if read != path:
                    read.unlink(missing_ok=True)

    def _read_schema(self, path: Path) -> dict[str, pl.DataType]:
        try:
            schema = self.file_schema(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            error = self.read_error(path, exc)
            assert error is not None
            raise error from None
        except pl.exceptions.PanicException as exc:  # Polars' reader gave up (a BaseException)
            text = str(exc).strip()
            reason = text.splitlines()[0] if text else "its reader stopped"
            hint = ("a time zone must be an IANA name (Asia/Kathmandu) or UTC: convert a fixed offset such as "
                    "'+05:45' when writing the file" if "time zone" in text else
                    "rewrite the file with another writer, or leave the odd column out")
            raise SourceError(f"cannot read the columns of {path}: {reason}", hint) from None
        _check_separator(path, schema)
        return schema

    def read_error(self, path: Path, error: Exception, located_only: bool = False) -> SourceError | None:
        """The reader's error with the file, line and column it failed at (found by a bounded
        re-scan where the reader does not say); with ``located_only``, None when not found."""
        from curate_basics.locate import first_bad_json_line, first_bad_utf8, first_ragged_row

        text = str(error).strip()
        reason = text.splitlines()[0] if text else type(error).__name__
        path = self.__dict__.get("_copies", {}).get(str(path), path)  # a compressed file: its copy, in use
        kind, params = self.kind_of(path)
        location, hint = None, "check source.format, or the file"
        if kind in ("csv", "tsv", "jsonl") and path.is_file():
            if kind == "jsonl" or codec_to_transcode(params.encoding) is None and params.encoding.lower() != LOSSY:
                location = first_bad_utf8(path)
                hint = "save the file as UTF-8" if kind == "jsonl" else self._encoding_hint(kind)
            if location is None and kind == "jsonl":
                location = first_bad_json_line(path)
                hint = "fix or remove that line: each line must be one JSON object"
            elif location is None:
                location = first_ragged_row(path, params.separator, params.quote_char, params.has_header,
                                            encoding=codec_to_transcode(params.encoding) or "utf-8")
                hint = "fix that row (quote fields that contain the separator), or check source.params.separator"
        if kind == "parquet" and says_not_utf8(error) and path.is_file():
            location = first_bad_string(path)
            hint = ("write the file's strings as UTF-8, as Parquet requires, or read them with bad bytes replaced "
                    f"by U+FFFD: {'source.format: parquet and ' if self.format != 'parquet' else ''}"
                    "source.params.encoding: utf8-lossy")
        if location is None:
            if located_only:
                return None
            return self._renamed(SourceError(f"cannot read {path} as {kind}: {reason}",
                                             "check source.format, or the file"))
        return self._renamed(SourceError(f"cannot read {path} as {kind}, {location.render()} ({reason})", hint))

    def _where(self, param: str) -> str:
        return f"source.params.{param}" if self.format != "auto" else f"source.format: csv and source.params.{param}"

    def _encoding_hint(self, kind: str) -> str:
        where = "source.params.encoding" if self.format != "auto" else f"source.format: {kind} and source.params.encoding"
        return (f"save the file as UTF-8, or name its encoding with {where}: cp1252 (most Windows and web "
                "exports), latin1 or any Python codec; utf8-lossy reads it with bad bytes replaced by U+FFFD")

    def kind_of(self, path: Path) -> tuple[str, Params]:
        """The format a file is read as, with the params it is read with."""
        return self.format, self.params

    def scan(self) -> Iterator[pl.LazyFrame]:
        # A copy made to read a file (decompressed, transcoded) is deleted once its frame has been
        # read (the next one is asked for).
        for path in self.files():
            read = path
            try:
                with self._objects_named():
                    read = self._plain(path)
                    if read != path and (reader := self._jsonl_reader(path)) is not None:
                        reader.carry_head(path, read)
                    frame = self.scan_file(read)
                yield frame
            finally:
                self._drop_copies(path, read)

    def _jsonl_reader(self, path: Path) -> JsonlSource | None:
        """The source that reads ``path`` as JSON Lines, or None when it is read as another format."""
        return None

    def _drop_copies(self, path: Path, read: Path) -> None:
        if read != path:
            read.unlink(missing_ok=True)
            self.__dict__.get("_copies", {}).pop(str(path), None)

    def _plain(self, path: Path, head: bool = False) -> Path:
        """``path``, or, when it is compressed (as its first bytes say), its text decompressed into
        the run's tmp directory: whole, or with ``head`` its first whole lines, those validation
        reads (``object_prefix``; ``curate_basics.compressed``). Messages name the copy as the
        file, decompressed."""
        if self.kind_of(path)[0] == "parquet":  # Parquet compresses its pages itself
            if compressed.named_compression(path.name) is not None and compressed.compression_of(path):
                raise SourceError(f"{self.name_of(path)} is compressed Parquet, which curate does not read "
                                  "(Parquet compresses its pages itself)", "decompress it first (gunzip -k FILE…)")
            return path
        kind = compressed.compression_of(path)
        if kind is None:
            named = compressed.named_compression(path.name)
            utf8 = getattr(self.kind_of(path)[1], "encoding", "utf8").lower() in ("utf8", "utf-8")
            if named is not None and utf8 and (refused := compressed.not_text(path, named, self.name_of(path))) is not None:
                raise refused
            if named is not None:
                logger.warning("%s is named like a %s file, but does not start like one: it is read as it "
                               "is, uncompressed", self.name_of(path), named)
            return self._without_bom(path, path, head)
        if (refused := compressed.unreadable(kind, self.name_of(path))) is not None:
            raise refused
        if self.format == "auto" and compressed.text_suffix(path) not in EXTENSIONS:
            raise _unknown_format(self.name_of(path))
        prefix = self.object_prefix(self.name_of(path), self.kind_of(path)[0]) if head else None
        copy = self._decompressed_path(path, head)
        self._name_objects([(copy, f"{self.name_of(path)} (decompressed)")])
        if not head:
            self.__dict__.setdefault("_copies", {})[str(path)] = copy
        ratio = getattr(self.params, "max_decompressed_ratio", compressed.DEFAULT_RATIO)
        compressed.decompress(path, kind, copy, shown=self.name_of(path), ratio=ratio,
                              min_free=self.ctx.min_free_disk, prefix=prefix)
        return self._without_bom(path, copy, head)

    def _without_bom(self, path: Path, read: Path, head: bool) -> Path:
        """``read`` (``path`` or its decompressed copy), or, for a JSON Lines file that starts with a
        UTF-8 byte order mark, a copy without it (``compressed.BOM``; ``head``: its first lines)."""
        if self.kind_of(path)[0] != "jsonl" or not compressed.starts_with_bom(read):
            return read
        prefix = self.object_prefix(self.name_of(path), "jsonl") if head else None
        copy = self._decompressed_path(path, head).with_suffix(".nobom" + compressed.text_suffix(path))
        self._name_objects([(copy, f"{self.name_of(path)}{' (decompressed)' if read != path else ''}")])
        if not head:
            self.__dict__.setdefault("_copies", {})[str(path)] = copy
        try:
            return compressed.decompress(read, compressed.BOM, copy, shown=self.name_of(path), ratio=1,
                                         min_free=self.ctx.min_free_disk, prefix=prefix)
        finally:
            if read != path:
                read.unlink(missing_ok=True)

    def _decompressed_path(self, path: Path, head: bool) -> Path:
        """Where the decompressed copy of ``path`` goes (``head``: of its first lines): the run's
        tmp directory, one name per file, ending as the text it holds does (``a.jsonl``)."""
        key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        name = f"{key}-{'head-' if head else ''}{compressed.text_name(path.name)}"
        return self.ctx.run_dir / "tmp" / "source" / "decompressed" / name

    def scan_file(self, path: Path) -> pl.LazyFrame:
        raise NotImplementedError

    def file_schema(self, path: Path) -> dict[str, pl.DataType]:
        """One file's columns and types, cheaply (a footer, a header)."""
        return dict(self.scan_file(path).collect_schema())


def _check_separator(path: Path, schema: dict[str, pl.DataType]) -> None:
    """A delimited file read with the wrong separator has one column whose name holds the real
    one. Say so, instead of letting the column mapping report url and alt_text as missing."""
    if len(schema) != 1 or EXTENSIONS.get(compressed.text_suffix(path)) not in ("csv", "tsv"):
        return
    (name,) = schema
    for separator in (",", ";", "\t", "|"):
        if separator in name:
            raise SourceError(
                f"{path} reads as a single column {name!r}: it looks separated by {separator!r}",
                f"set source.format: csv and source.params.separator: {separator!r}",
            )


class ParquetParams(Params):
    encoding: Literal["utf8", "utf8-lossy"] = Field(
        "utf8", description="utf8-lossy: read strings that are not UTF-8 (as Parquet's must be) with each bad byte "
                            "sequence replaced by U+FFFD, instead of failing (slower: the file is read through pyarrow)")


class ParquetSource(FileSource):
    format = "parquet"
    description = "Parquet file(s)"
    extensions = (".parquet", ".pq")
    Params = ParquetParams

    def scan_file(self, path: Path) -> pl.LazyFrame:
        return scan_lossy(path) if self._lossy else pl.scan_parquet(path)

    def file_schema(self, path: Path) -> dict[str, pl.DataType]:
        _refuse_unknown_time_zones(path)
        return polars_schema(path)  # the footer only, read once (curate.footers)

    def parquet_files(self) -> list[Path] | None:
        return None if self._lossy else self.files()  # mended strings need the copy staging makes

    @property
    def _lossy(self) -> bool:
        return getattr(self.params, "encoding", "utf8") == LOSSY


ROW_BYTES_DESCRIPTION = (
    "the longest row read, in bytes: a row past it is refused before it is read (a reader holds a whole row "
    "in memory)")


def _max_row_bytes() -> int:
    return Field(MAX_ROW_BYTES, ge=1, description=ROW_BYTES_DESCRIPTION, json_schema_extra={"fingerprint": False})


def _max_decompressed_ratio() -> int:
    return Field(compressed.DEFAULT_RATIO, ge=1, json_schema_extra={"fingerprint": False}, description=(
        "how many times its own size a compressed file (.gz, .zst, .bz2, .xz, .lz4) may decompress to, past "
        f"{compressed.RATIO_FLOOR >> 30} GiB: a decompression bomb stops there, not at a full disk"))


class CsvParams(Params):
    separator: str = Field(",", min_length=1, max_length=1)
    has_header: bool = True
    encoding: str = "utf8"
    quote_char: str | None = '"'
    max_row_bytes: int = _max_row_bytes()
    max_decompressed_ratio: int = _max_decompressed_ratio()

    _known_encoding = field_validator("encoding")(check_encoding)


class CsvSource(FileSource):
    format = "csv"
    description = "CSV file(s); all columns read as text"
    extensions = (".csv",)
    Params = CsvParams

    def _drop_copies(self, path: Path, read: Path) -> None:
        self._decoded_path(read).unlink(missing_ok=True)
        super()._drop_copies(path, read)

    def scan_file(self, path: Path) -> pl.LazyFrame:
        codec = codec_to_transcode(self.params.encoding)
        read = path if codec is None else transcode(path, codec, self._decoded_path(path))
        _refuse_long_rows(self, path, read, self.params.quote_char)
        p = self.params
        counted = csv_fields(read, p.separator, p.quote_char, p.has_header)
        if counted.too_many_blank:
            raise SourceError(f"cannot read {path} as {self.format}: it holds more than {MAX_BLANK_LINES:,} blank lines",
                              "remove them (grep -v '^[[:space:]]*$' FILE), then run again")
        if counted.short_line is not None:
            where = f"line {counted.short_line}"  # a decoded copy has the file's lines
            plural = "s" if counted.short_fields != 1 else ""
            raise SourceError(
                f"cannot read {path} as {self.format}, {where}: {counted.short_fields} field{plural} where the "
                f"{'header' if p.has_header else 'first row'} has {counted.expected}",
                "a line break in an unquoted field cuts its row in two: quote fields that hold line breaks or the "
                "separator; a row whose last fields are empty still needs their separators (a,b,)")
        if counted.long_line is not None:
            where = f"line {counted.long_line}"
            raise SourceError(
                f"cannot read {path} as {self.format}, {where}: {counted.long_fields} fields where the "
                f"{'header' if p.has_header else 'first row'} has {counted.expected}"
                + (" (it holds a carriage return alone, which ends no row)" if counted.lone_return else ""),
                "convert the file's line endings to \\n (a carriage return alone is an old Mac line end)"
                if counted.lone_return else "fix that row (quote fields that contain the separator), or check "
                f"{self._where('separator')}")
        frame = self._read(read)
        if counted.blank_rows:  # read as rows of nulls
            frame = frame.with_row_index("_line").filter(~pl.col("_line").is_in(counted.blank_rows)).drop("_line")
        return frame

    def file_schema(self, path: Path) -> dict[str, pl.DataType]:
        codec = codec_to_transcode(self.params.encoding)
        if codec is None:
            with open(path, "rb") as file:
                start = file.read(2)
            if start in (b"\xff\xfe", b"\xfe\xff"):
                raise SourceError(f"cannot read {path} as {self.format}: it starts with a UTF-16 byte order mark",
                                  f"name its encoding: {self._where('encoding')}: utf-16")
        schema = dict(self._read(path if codec is None else decoded_prefix(path, codec)).collect_schema())
        if codec is None and self.params.encoding.lower() != LOSSY and any("\ufffd" in n for n in schema):
            self._refuse_lossy_header(path)
        if any("\r" in name for name in schema):  # Polars ends lines at \n only
            raise SourceError(f"cannot read {path} as {self.format}: its lines end with a carriage return alone "
                              f"(an old Mac line end), which ends no row: the reader saw one line, "
                              f"{visible(self.params.separator.join(schema))[:120]!s}…",
                              "convert the file's line endings to \\n (or \\r\\n)")
        if self.params.has_header:
            self._check_header(path, codec)
        return schema

    def _refuse_lossy_header(self, path: Path) -> None:
        """A header holding bytes that are not UTF-8. Polars reads the rows strictly but the
        header with such bytes replaced by U+FFFD: a column 'n\\xffote' was carried as 'n�ote'
        without a word. A name holding U+FFFD sends the file's first ``CHUNK`` bytes (the header's,
        as ``decoded_prefix`` reads it) through a strict decoder."""
        from curate_basics.locate import first_bad_utf8

        found = first_bad_utf8(path, limit=CHUNK)
        if found is not None:
            raise SourceError(f"cannot read {path} as {self.format}, {found.render()} (the reader would read "
                              "the header's names with it replaced by U+FFFD)",
                              self._encoding_hint(self.format))

    def _check_header(self, path: Path, codec: str | None) -> None:
        """Empty or repeated names in the header. Polars invents names for them ('_duplicated_0',
        'url_duplicated_0'): an empty name failed as a reserved column, a repeated one was read as
        two columns without a word."""
        import csv

        p = self.params
        text = io.TextIOWrapper(decoded_prefix(path, codec or "utf-8"), encoding="utf-8", newline="")
        quoting = csv.QUOTE_MINIMAL if p.quote_char else csv.QUOTE_NONE
        try:
            header = next(csv.reader(text, delimiter=p.separator, quotechar=p.quote_char or '"', quoting=quoting), [])
        except csv.Error as exc:  # a field past the module's limit: a quote opened in the header and never closed
            raise SourceError(
                f"cannot read {path} as {self.format}, line 1: a field of the header runs past "
                f"{csv.field_size_limit():,} characters ({exc}): a quote opened there is never closed?",
                "close the quote the header opens, or check source.format and source.params.quote_char") from None
        problems = []
        empty = [str(i) for i, name in enumerate(header, start=1) if not name.strip()]
        if empty:
            problems.append(f"no name at position{'s' if len(empty) > 1 else ''} {', '.join(empty)}")
        positions: dict[str, list[int]] = {}
        for i, name in enumerate(header, start=1):
            if name.strip():
                positions.setdefault(name, []).append(i)
        for name, where in positions.items():
            if len(where) > 1:
                problems.append(f"{name!r} at positions {', '.join(map(str, where))}")
        if problems:
            shown = p.separator.join(header)
            raise SourceError(
                f"cannot read {path} as {self.format}, line 1: the header {shown[:200]!r} has {'; '.join(problems)}",
                "give every column one name of its own in the header line (a file without a header: "
                "source.params.has_header: false)",
            )

    def _read(self, path: Path | io.BytesIO) -> pl.LazyFrame:
        p = self.params
        return pl.scan_csv(
            path, separator=p.separator, has_header=p.has_header, quote_char=p.quote_char,
            infer_schema=False, encoding="utf8-lossy" if p.encoding.lower() == LOSSY else "utf8",
        )

    def _decoded_path(self, path: Path) -> Path:
        """Where the UTF-8 copy of ``path`` goes: the run's tmp directory, one name per file."""
        key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        return self.ctx.run_dir / "tmp" / "source" / "decoded" / f"{key}-{path.name}"


class TsvParams(CsvParams):
    separator: str = Field("\t", min_length=1, max_length=1)
    quote_char: str | None = None


class TsvSource(CsvSource):
    format = "tsv"
    description = "TSV file(s), as img2dataset and CC3M ship them"
    extensions = (".tsv", ".tab")
    Params = TsvParams


class JsonlParams(Params):
    max_row_bytes: int = _max_row_bytes()
    max_decompressed_ratio: int = _max_decompressed_ratio()


class JsonlSource(FileSource):
    format = "jsonl"
    description = "JSON Lines file(s)"
    extensions = (".jsonl", ".ndjson", ".json")
    Params = JsonlParams

    def scan_file(self, path: Path) -> pl.LazyFrame:
        """The file with the schema validation inferred (from the whole file, when it is small):
        Polars' own inference reads the first 100 lines and drops keys that first appear later.
        A larger file's lines past the scan are checked first: read with that schema, a key that
        first appears there was dropped and a number where the scan saw text became text."""
        from curate_basics.locate import first_value_past_scan, size_text

        schema, scanned = self._scan(path)
        if not scanned.complete:
            late = first_value_past_scan(path, schema, scanned, JSONL_SCAN_LIMIT)
            if late is not None:
                raise SourceError(
                    f"cannot read {path} as jsonl, {late.render()}",
                    late.hint or f"the columns of a JSON Lines file and their types are read from its first "
                    f"{size_text(JSONL_SCAN_LIMIT)}: put a line with every key (each with a value of its type) "
                    "near its start, give each key one JSON type on every line, or convert the file to Parquet "
                    "with the types declared",
                )
        return pl.scan_ndjson(path, schema=schema)

    def file_schema(self, path: Path) -> dict[str, pl.DataType]:
        return self._scan(path)[0]

    def _jsonl_reader(self, path: Path) -> JsonlSource | None:
        return self

    def keep_head(self, path: Path, before: tuple[int, int, int], head: Path) -> None:
        """Keep the scan of ``head``, the copy of ``path``'s first lines validation read (``before``:
        ``path``'s stat when it was copied), for the copy of its whole text (``carry_head``)."""
        found = self.__dict__.get("_schemas", {}).get(_scan_key(head))
        if found is not None:
            self.__dict__.setdefault("_heads", {})[str(path)] = Head(before, head.stat().st_size, found[1])

    def carry_head(self, path: Path, copy: Path) -> None:
        """Let ``copy``, the whole text of ``path``, take the scan of its head when it reads the
        same lines (curate_basics.headscan), instead of scanning them again."""
        head = self.__dict__.get("_heads", {}).get(str(path))
        scan = None if head is None else carried(head, _stat_key(path), copy, JSONL_SCAN_LIMIT)
        if scan is not None:
            self.__dict__.setdefault("_carried", {})[_scan_key(copy)] = scan

    def _scan(self, path: Path) -> tuple[dict[str, pl.DataType], JsonScan]:
        """The file's schema and the scan of its first ``JSONL_SCAN_LIMIT`` bytes it comes from."""
        from curate_basics.locate import first_mixed_json_type

        known = self.__dict__.setdefault("_schemas", {})
        key = _scan_key(path)
        if key not in known:
            _refuse_long_rows(self, path, path, None)  # before anything reads a line (validation too)
            scanned = self.__dict__.get("_carried", {}).pop(key, None)  # the head's, of a copy
            if scanned is None:
                scanned = first_mixed_json_type(path, JSONL_SCAN_LIMIT)
            if scanned.mixed is not None:
                raise SourceError(
                    f"cannot read {path} as jsonl, {scanned.mixed.render()}",
                    scanned.mixed.hint or "give each key one JSON type on every line (quote numbers meant as "
                    "text, ids past 2^53 among fractions too; null for none), or convert the file to Parquet with "
                    "the types declared",
                )
            lines = None if scanned.complete else max(JSONL_INFER_MIN_LINES, scanned.lines)
            schema = dict(pl.scan_ndjson(path, infer_schema_length=lines).collect_schema())
            for name, (value, line) in scanned.inexact.items():  # fractions on lines past the scan
                if schema.get(name) is not None and schema[name].is_float():
                    raise SourceError(
                        f"cannot read {path} as jsonl, line {line}: {name!r} is {value}, a whole number a float cannot "
                        "hold exactly, and the key holds fractions on other lines: the reader would round it",
                        "quote such numbers (ids past 2^53) as text, or convert the file to Parquet with the types "
                        "declared")
            known[key] = (schema, scanned)
        return known[key]


class AutoParams(Params):
    max_row_bytes: int = _max_row_bytes()
    max_decompressed_ratio: int = _max_decompressed_ratio()


class AutoSource(FileSource):
    format = "auto"
    description = "any of parquet/csv/tsv/jsonl, chosen by each file's extension"
    extensions = tuple(EXTENSIONS)
    Params = AutoParams

    def kind_of(self, path: Path) -> tuple[str, Params]:
        kind = EXTENSIONS.get(compressed.text_suffix(path), "auto")
        return kind, (self._reader(path).params if kind in ("csv", "tsv") else self.params)

    def scan_file(self, path: Path) -> pl.LazyFrame:
        return self._reader(path).scan_file(path)

    def file_schema(self, path: Path) -> dict[str, pl.DataType]:
        return self._reader(path).file_schema(path)

    def _jsonl_reader(self, path: Path) -> JsonlSource | None:
        reader = self._reader(path) if EXTENSIONS.get(compressed.text_suffix(path)) == "jsonl" else None
        return reader if isinstance(reader, JsonlSource) else None

    def _reader(self, path: Path) -> FileSource:
        """The source of the file's format, one per format (it may keep what it learnt)."""
        kind = EXTENSIONS.get(compressed.text_suffix(path))
        if kind is None:
            raise _unknown_format(str(path))
        readers = self.__dict__.setdefault("_readers", {})
        if kind not in readers:
            cls = {"parquet": ParquetSource, "csv": CsvSource, "tsv": TsvSource, "jsonl": JsonlSource}[kind]
            p = self.params
            limit = {} if kind == "parquet" else {"max_row_bytes": p.max_row_bytes,
                                                  "max_decompressed_ratio": p.max_decompressed_ratio}
            readers[kind] = cls(cls.Params(**limit), self.ctx)
        return readers[kind]

    def parquet_files(self) -> list[Path] | None:
        """Read in place, as format parquet is, when every file is Parquet."""
        files = self.files()
        return files if files and all(EXTENSIONS.get(f.suffix.lower()) == "parquet" for f in files) else None


def _refuse_long_rows(source: FileSource, path: Path, read: Path, quote: str | None) -> None:
    """A row of ``path`` (read from ``read``, its UTF-8 copy) past ``max_row_bytes``, refused with
    its line before the reader holds it."""
    limit = source.params.max_row_bytes
    found = first_long_row(read, limit, quote)
    if found is None:
        return
    from curate_basics.locate import size_text

    where = f"line {found.line}" + (f" (of its UTF-8 copy {read})" if read != path else "")
    length = f"{found.length:,} bytes" if found.complete else f"over {found.length:,} bytes (read that far)"
    unclosed = f", or a {quote} opened there is never closed" if quote and not found.complete else ""
    raise SourceError(
        f"cannot read {path} as {source.format}, {where}: the row starting there is {length}, past "
        f"source.params.max_row_bytes ({size_text(limit)}){unclosed}",
        "a field that long is no alt-text (a file or a page pasted into the table?): remove the row from the file, "
        "or raise source.params.max_row_bytes if such rows are meant (the reader holds a whole row in memory)")


def _unknown_format(name: str) -> SourceError:
    inner = compressed.named_compression(name)
    if inner is not None:
        return SourceError(f"cannot tell the format of {name} from its name: it ends in "
                           f"{Path(name).suffix} ({inner}-compressed) and says nothing of the text inside",
                           "set source.format to csv, tsv or jsonl, or name the file for what it holds "
                           f"(a.jsonl{Path(name).suffix})")
    return SourceError(f"cannot tell the format of {name} from its extension",
                       "set source.format to parquet, csv, tsv or jsonl")


def _scan_key(path: Path) -> tuple[str, int, int]:
    """What a JSON Lines file's scan is kept under: a copy made again is another file."""
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


def _stat_key(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def _refuse_unknown_time_zones(path: Path) -> None:
    """A timestamp column whose time zone Polars does not know ('+05:45', a fixed offset, which
    Arrow writers allow) made Polars' footer reader panic: a Rust backtrace, then Python's. Read the
    zones with pyarrow first (curate.footers) and ask Polars about each, which it answers with an error."""
    footer = arrow_footer(path)
    for column, zone in footer.zones if footer is not None else ():  # None: Polars' reader says what is wrong
        if not _polars_knows(zone):
            raise SourceError(f"column {column!r} of {path} has the time zone {zone!r}, which Polars does not "
                              "know (it takes IANA names such as 'Asia/Kathmandu', and UTC)",
                              "convert the column to UTC or to an IANA zone when writing the file")


@functools.lru_cache(maxsize=256)
def _polars_knows(zone: str) -> bool:
    try:
        pl.Series([0], dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone(zone)
    except pl.exceptions.PolarsError:
        return False
    return True
