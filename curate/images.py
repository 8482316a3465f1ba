"""Reading images by reference: ``image = {shard, key}`` rows point into the download step's store.

``shard`` is a webdataset tar (members ``<key>.<ext>``) or a directory of ``<key>.<ext>`` files,
relative to the run's store directory (``manifest.json``'s ``store_dir``; a step has it in
``ctx.extras["store_dir"]``). ``key`` is the row's uid (:func:`curate.filekeys.file_key` of a
source's uid that is not a safe file name). Reading a member costs one seek and one
read: each tar's member offsets are indexed once per process (a pass over its headers) and kept
while the file is unchanged.

    from curate.images import iter_images
    for image in iter_images(table["image"], store_dir):   # PIL images; None where no image
        ...

Files are opened as :func:`curate.runfiles.open_regular` opens them: a pipe or a device where a
shard or a member should be is an ``OSError``, never a read that waits forever. ``within``
confines the reads to some folders (the report embeds images from a run directory that may come
from someone else: an absolute shard, ``..`` or a link must not reach the rest of the disk).

A spec run with ``--untrusted`` names its rows' images too (a table in the stranger's bundle may
hold ``{shard: /home/you/photos, key: …}``, a ``..`` or a link out), and its steps and outputs
copy what they read into what the stranger gets back. So the engine gives its steps and sinks
``ctx.image_folders`` (:func:`untrusted_image_folders`: the working directory, the run directory
and its store; None for a trusted spec), which they pass as ``within``; :func:`read_image_file`
reads an image a row names by its path the same way.

Steps that look at pixels decode with :func:`decode_rgb` (the RGB picture a browser shows: EXIF
orientation followed, transparency on white, 16-bit samples at 8 bits), so CLIP, copy detection,
the captioner and the exports see one picture whatever the file's format, and a file that does not
decode is a row without an image to each of them.

Pillow is imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import os
import tarfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from curate.runfiles import FileOutside, confined, open_regular, real_folders

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")
INDEX_CACHE_SIZE = 512  # tars whose index is kept; an index is ~100 bytes per member

ImageRef = Mapping[str, Any] | tuple[str, str]


class ImageNotFound(LookupError):
    """The shard exists but holds no image with this key (a store that was changed by hand); in
    the run's store, that is :class:`ImageGone` instead."""


class ImageGone(Exception):
    """An image a row references in the run's store cannot be read: its shard (a tar or folder a
    step stored there, the download step's) is gone, holds no image with that key, or is cut
    short. The store lost what a step stored (a cleanup, a copy or archive that left it out, a
    lost disk), and a step that read on would write nulls for images that exist: it fails
    instead, naming the file, with ``hint`` saying how to get them back. Not a row without an
    image (a failed download: its reference is null) nor an image that does not decode; not an
    ``OSError`` or ``LookupError``, so no ``except`` meant for those treats it as one.
    ``shard``: the reference's shard as the row wrote it."""

    def __init__(self, message: str, shard: str = "", hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.shard = shard
        self.hint = refetch_hint() if hint is None else hint

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.message, self.shard, self.hint)


def refetch_hint(step: str | None = None) -> str:
    """How to get back the images of the step labelled ``step`` (None: not known here, the
    engine names it where it can), which stored them in the run's store."""
    which = f"--from {step}" if step else "--from STEP (STEP: the step that stored them, e.g. download)"
    return ("the images a step stored in the run's store are gone or damaged (a cleanup, a copy or archive "
            f"that left them out, a lost disk): store them again with `curate run SPEC {which}`, or run it "
            "with --no-cache")


class ImageOutside(FileOutside):
    """A read confined ``within`` some folders was asked for an image file outside them (links
    resolved); ``path`` is where it really lies, ``hint`` what to do (from :class:`ImageFolders`).
    Nothing was opened."""


UNTRUSTED_IMAGES = ("the spec is untrusted (run.untrusted / --untrusted), so the images its rows name are read "
                    "only from the working directory, the run directory and its store")
UNTRUSTED_IMAGES_FIX = ("copy the images into the working directory (or give shards relative to the run's store), "
                        "or run the spec without --untrusted if you trust it")


@dataclass(frozen=True)
class ImageFolders:
    """The only folders the images a table's rows name may be read from (links resolved, as
    :func:`curate.runfiles.real_folders` gives them), why, and what to do about an image outside
    them: pass it as ``within`` and a refusal (:class:`ImageOutside`) says so."""

    folders: tuple[Path, ...]
    why: str | None = None
    hint: str | None = None


# What a read is confined to: an ImageFolders, any folders (their links resolved here), or None: anywhere.
Within = ImageFolders | Iterable[str | Path] | None


def untrusted_image_folders(run_dir: str | Path, store_dir: str | Path) -> ImageFolders:
    """Where a spec run with ``--untrusted`` reads the images its rows name: the working directory
    (the stranger's bundle lies there), the run directory and its store (``run.cache_dir``)."""
    return ImageFolders(real_folders([os.getcwd(), run_dir, store_dir]), UNTRUSTED_IMAGES, UNTRUSTED_IMAGES_FIX)


def _split(ref: Any) -> tuple[str | None, str | None]:
    if ref is None:
        return None, None
    if isinstance(ref, Mapping):
        return ref.get("shard"), ref.get("key")
    if isinstance(ref, tuple) and len(ref) == 2:
        return ref[0], ref[1]
    shard, key = getattr(ref, "shard", None), getattr(ref, "key", None)
    if shard is None and key is None:
        raise TypeError(f"an image reference is {{'shard': ..., 'key': ...}}, got {ref!r}")
    return shard, key


def _resolve(shard: str, store_dir: str | Path | None) -> Path:
    path = Path(shard)
    if path.is_absolute() or store_dir is None:
        return path
    return Path(store_dir) / path


class _Indexes:
    """Member index per shard, keyed by (path, size, mtime) so a rewritten tar is re-indexed."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.entries: OrderedDict[tuple[str, int, int], dict[str, tuple[str, int, int]]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, path: Path) -> dict[str, tuple[str, int, int]]:
        stat = path.stat()
        cache_key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self.lock:
            index = self.entries.get(cache_key)
            if index is not None:
                self.entries.move_to_end(cache_key)
                return index
        index = _index_directory(path) if path.is_dir() else _index_tar(path)
        with self.lock:
            self.entries[cache_key] = index
            while len(self.entries) > self.capacity:
                self.entries.popitem(last=False)
        return index

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


def _key_and_extension(name: str) -> tuple[str, str]:
    """``dir/abc.jpg`` → (``dir/abc``, ``jpg``): webdataset's key ends at the basename's first dot."""
    directory, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), extension.lower()


def _index_tar(path: Path) -> dict[str, tuple[str, int, int]]:
    """Member offsets from the 512-byte headers, read directly: several times faster than
    ``tarfile`` on plain ustar archives (what the download step writes). Anything fancier (long
    names, pax headers, sparse files) goes through ``tarfile``."""
    index: dict[str, tuple[str, int, int]] = {}
    with open_regular(path) as handle:
        offset = 0
        while True:
            handle.seek(offset)
            header = handle.read(512)
            if len(header) < 512 or header == b"\0" * 512:
                return index
            kind = header[156:157]
            if kind not in (b"0", b"\0", b"5"):
                return _index_tar_slowly(handle)
            try:
                size = int(header[124:136].strip(b"\0 ") or b"0", 8)
            except ValueError:
                return _index_tar_slowly(handle)
            name = header[0:100].split(b"\0", 1)[0]
            prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
            if kind != b"5":
                full = (prefix + b"/" + name if prefix else name).decode("utf-8", "surrogateescape")
                key, extension = _key_and_extension(full)
                if extension in IMAGE_EXTENSIONS:
                    index.setdefault(key, (extension, offset + 512, size))
            offset += 512 + (size + 511) // 512 * 512


def _index_tar_slowly(handle: IO[bytes]) -> dict[str, tuple[str, int, int]]:
    index: dict[str, tuple[str, int, int]] = {}
    handle.seek(0)
    with tarfile.open(fileobj=handle, mode="r:") as archive:  # uncompressed only: members must be seekable
        for member in archive:
            if not member.isfile():
                continue
            key, extension = _key_and_extension(member.name)
            if extension in IMAGE_EXTENSIONS:
                index.setdefault(key, (extension, member.offset_data, member.size))
    return index


def _index_directory(path: Path) -> dict[str, tuple[str, int, int]]:
    index: dict[str, tuple[str, int, int]] = {}
    with os.scandir(path) as entries:
        for entry in entries:
            key, extension = _key_and_extension(entry.name)
            if extension in IMAGE_EXTENSIONS and entry.is_file():
                index.setdefault(key, (extension, -1, -1))
    return index


_indexes = _Indexes(INDEX_CACHE_SIZE)


class _Reader:
    """Keeps the last shard open, so reading a run of refs into one tar is one open()."""

    def __init__(self, store_dir: str | Path | None, within: Within = None):
        self.store_dir = store_dir
        self.why: str | None = None
        self.hint: str | None = None
        if isinstance(within, ImageFolders):
            self.within: tuple[Path, ...] | None = within.folders
            self.why, self.hint = within.why, within.hint
        else:
            self.within = None if within is None else real_folders(within)
        self.path: Path | None = None
        self.handle: IO[bytes] | None = None
        self.opened = ExitStack()  # the open shard's file, closed in close()
        self.last: tuple[str, Path, dict[str, tuple[str, int, int]]] | None = None  # shard, path, index

    def confine(self, path: Path, what: str) -> Path:
        """``path`` with its links resolved, if it lies ``within`` the allowed folders; ``what``
        names it in the refusal ("image shard /x")."""
        if self.within is None:
            return path
        real = confined(path, self.within)
        if real is None:
            where = Path(os.path.realpath(path))
            folders = ", ".join(str(folder) for folder in self.within)
            why = f"; {self.why}" if self.why else ""
            raise ImageOutside(f"{what} lies outside {folders} (at {where}){why}", where, self.hint)
        return real

    def read_file(self, path: Path) -> bytes:
        """The bytes of an image file named by its path, confined like a shard."""
        with open_regular(self.confine(path, f"image file {path}")) as handle:
            return handle.read()

    def read(self, ref: Any) -> bytes | None:
        shard, key = _split(ref)
        if shard is None or key is None:
            return None
        if self.last is not None and self.last[0] == shard:
            _, path, index = self.last  # a run of refs into one shard: no stat per image
        else:
            path = self.confine(_resolve(str(shard), self.store_dir), f"image shard {shard}")
            if not path.exists():
                if self.in_store(str(shard)):
                    raise ImageGone(f"image shard {path} does not exist (a row references it in the run's "
                                    f"store {self.store_dir}, key {key!r})", str(shard))
                where = f" (resolved against store_dir {self.store_dir})" if self.store_dir is not None else \
                    " (relative shard paths need the run's store_dir)"
                raise FileNotFoundError(f"image shard {shard} does not exist{where}")
            index = _indexes.get(path)
            self.last = (str(shard), path, index)
        entry = index.get(str(key))
        if entry is None:
            if self.in_store(str(shard)):
                raise ImageGone(f"image shard {path} holds no image {key!r}, which a row references in the "
                                "run's store (cut short, or changed since it was stored)", str(shard))
            raise ImageNotFound(f"no image with key {key!r} in {path}")
        extension, offset, size = entry
        if offset < 0:
            # a member is a file of its own: confined too (a link in a folder inside may point out)
            member = path / f"{key}.{extension}"
            try:
                with open_regular(self.confine(member, f"image {member.name} of shard {shard}")) as handle:
                    return handle.read()
            except FileNotFoundError:
                if self.in_store(str(shard)):
                    raise ImageGone(f"image {member} does not exist (a row references it in the run's store "
                                    f"{self.store_dir})", str(shard)) from None
                raise
        if self.path != path:
            self.close()
            self.handle = self.opened.enter_context(open_regular(path))
            self.path = path
        assert self.handle is not None
        self.handle.seek(offset)
        data = self.handle.read(size)
        if len(data) != size:
            message = f"{path} is truncated: key {key!r} wants {size} bytes at {offset}"
            if self.in_store(str(shard)):
                raise ImageGone(f"{message} (a shard in the run's store, cut short)", str(shard))
            raise ImageNotFound(message)
        return data

    def in_store(self, shard: str) -> bool:
        """Whether ``shard`` lies in a step's folder of the run's store as written (relative to
        the store, or an absolute path under it, links not followed, and that folder is there): a
        step stored it there, so its loss is damage (:class:`ImageGone`), not a row without an
        image. A reference to a folder the store never had (a source's table naming another
        run's store) is a missing file, as before."""
        if self.store_dir is None:
            return False
        store = os.path.normpath(os.path.abspath(self.store_dir))
        where = os.path.normpath(os.path.join(store, shard))
        if not where.startswith(store + os.sep):
            return False
        folder = where[len(store) + 1:].split(os.sep, 1)[0]
        return os.path.isdir(os.path.join(store, folder))

    def close(self) -> None:
        self.opened.close()
        self.handle = None
        self.path = None


def _decode(data: bytes) -> PILImage:
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


ORIENTATION = 0x0112  # the EXIF tag
BACKGROUND = (255, 255, 255)  # under transparent pixels: white, as the download step's img2dataset blends


def decode_rgb(data: bytes) -> PILImage | None:
    """An image's bytes as the RGB picture a browser shows (:func:`as_shown`), decoded the same way
    by every step that looks at pixels (CLIP, copy detection, the captioner, exports), so they all
    see one picture. None for bytes that are no image Pillow decodes: empty, truncated, an HTML
    page, a decompression bomb over Pillow's pixel limit (``Image.MAX_IMAGE_PIXELS``, twice: its
    error, not its warning), which a step treats as a row without an image."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return as_shown(image)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None  # UnidentifiedImageError and "image file is truncated" are OSErrors


def as_shown(image: PILImage) -> PILImage:
    """``image`` in RGB as a browser shows it: turned as its EXIF orientation says, transparency
    composited on :data:`BACKGROUND`, 16-bit and 32-bit samples brought to 8 bits by their top
    byte (Pillow's ``convert`` clips them: a 16-bit PNG turned white), other modes (CMYK, 1, P,
    YCbCr…) by Pillow's ``convert``. The download step stores what it fetched the same way."""
    from PIL import Image, ImageOps

    if image.getexif().get(ORIENTATION, 1) != 1:  # exif_transpose copies even an upright image
        image = ImageOps.exif_transpose(image) or image
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        import numpy as np

        samples = np.asarray(image)
        if image.mode == "F":
            eight = np.rint(np.clip(samples, 0.0, 1.0) * 255)
        else:
            eight = np.clip(samples, 0, 65535) >> 8
        image = Image.fromarray(eight.astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def read_image_bytes(ref: ImageRef, store_dir: str | Path | None = None, *, within: Within = None) -> bytes | None:
    """The encoded bytes of one image (None for a null reference: a row without an image).
    ``within``: folders the file must lie in, links resolved (else :class:`ImageOutside`); an
    :class:`ImageFolders` (``ctx.image_folders``) or any folders."""
    reader = _Reader(store_dir, within)
    try:
        return reader.read(ref)
    finally:
        reader.close()


def read_image_file(path: str | Path, *, within: Within = None) -> bytes:
    """The bytes of an image a row names by its path (a step's ``images: path`` column), read as
    a shard is: a regular file, never waited on, and with ``within`` only inside those folders
    (else :class:`ImageOutside`, and nothing is opened)."""
    return _Reader(None, within).read_file(Path(path))


@contextmanager
def image_reader(store_dir: str | Path | None = None, *, within: Within = None
                 ) -> Iterator[Callable[[ImageRef], bytes | None]]:
    """``read(ref)``: the encoded bytes of one image at a time (None for a null reference), with
    the last shard kept open between reads, as :func:`iter_images` keeps it (5 µs a row against 25
    for :func:`read_image_bytes`, which opens the shard again each time: a tar of 64 x 64 JPEGs),
    but each read raising on its own, so a caller can judge a missing image and go on."""
    reader = _Reader(store_dir, within)
    try:
        yield reader.read
    finally:
        reader.close()


def open_image(ref: ImageRef, store_dir: str | Path | None = None, *, within: Within = None) -> PILImage | None:
    """One image as a loaded PIL image (None for a null reference)."""
    data = read_image_bytes(ref, store_dir, within=within)
    return None if data is None else _decode(data)


def iter_images(refs: Iterable[Any], store_dir: str | Path | None = None, *,
                as_bytes: bool = False, within: Within = None) -> Iterator[Any]:
    """Images in the order of ``refs`` (PIL images, or encoded bytes with ``as_bytes``); None for
    null references. ``refs`` may be a polars Series of the ``image`` column, or dicts/tuples.
    A reference to a missing shard or key raises: that is a broken store, not a missing image
    (:class:`ImageGone` in the run's store); so does one outside ``within`` when given
    (:class:`ImageOutside`)."""
    reader = _Reader(store_dir, within)
    try:
        for ref in refs:
            data = reader.read(ref)
            yield data if data is None or as_bytes else _decode(data)
    finally:
        reader.close()


def open_images(refs: Iterable[Any], store_dir: str | Path | None = None, *, as_bytes: bool = False,
                within: Within = None) -> list[Any]:
    """:func:`iter_images` as a list."""
    return list(iter_images(refs, store_dir, as_bytes=as_bytes, within=within))


def clear_cache() -> None:
    """Forget every tar index (tests; a process that rewrote tars in place within one mtime tick)."""
    _indexes.clear()


__all__ = ["BACKGROUND", "ImageFolders", "ImageGone", "ImageNotFound", "ImageOutside", "ImageRef", "as_shown",
           "clear_cache", "decode_rgb", "image_reader", "iter_images", "open_image", "open_images",
           "read_image_bytes", "read_image_file", "refetch_hint", "untrusted_image_folders"]
