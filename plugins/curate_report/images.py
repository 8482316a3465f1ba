"""Images for the report: read a member of a webdataset tar shard by key, make a JPEG thumbnail.

A row points at its image with an ``image`` struct ``{shard, key}``: ``shard`` is a tar file and
``key`` names the sample inside it (webdataset's convention: ``<key>.jpg`` next to ``<key>.json``).
Anything missing or unreadable gives ``None``; a report shows a placeholder, it never fails on
an image.
"""

from __future__ import annotations

import base64
import io
import tarfile
import warnings
from pathlib import Path
from typing import Any

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")
THUMBNAIL_PX = 96


def split_member(name: str) -> tuple[str, str]:
    """``dir/000123.jpg`` → (``dir/000123``, ``jpg``): the key ends at the basename's first dot."""
    directory, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), extension.lower()


class ShardImages:
    """Opens images by ``{shard, key}``; keeps each tar open, with its index, until ``close``."""

    def __init__(self, roots: list[Path]):
        self.roots = [Path(r) for r in roots]
        self._tars: dict[Path, tuple[tarfile.TarFile, dict[str, tarfile.TarInfo]] | None] = {}

    def resolve(self, shard: str) -> Path | None:
        """Absolute paths as they are; relative ones against the run, its store and its spec."""
        path = Path(shard)
        if path.is_absolute():
            return path if path.is_file() else None
        return next((root / path for root in self.roots if (root / path).is_file()), None)

    def _open(self, path: Path) -> tuple[tarfile.TarFile, dict[str, tarfile.TarInfo]] | None:
        if path not in self._tars:
            try:
                archive = tarfile.open(path, "r:*")  # noqa: SIM115 - kept open for the next image, closed in close()
                index: dict[str, tarfile.TarInfo] = {}
                for member in archive.getmembers():
                    if not member.isfile():
                        continue
                    key, extension = split_member(member.name)
                    index.setdefault(member.name, member)
                    if extension in IMAGE_EXTENSIONS:
                        index.setdefault(key, member)
                self._tars[path] = (archive, index)
            except (OSError, tarfile.TarError):
                self._tars[path] = None
        return self._tars[path]

    def read(self, image: dict[str, Any] | None) -> bytes | None:
        if not image or not image.get("shard") or image.get("key") is None:
            return None
        path = self.resolve(str(image["shard"]))
        opened = self._open(path) if path is not None else None
        if opened is None:
            return None
        archive, index = opened
        member = index.get(str(image["key"]))
        if member is None:
            return None
        try:
            handle = archive.extractfile(member)
            return handle.read() if handle is not None else None
        except (OSError, tarfile.TarError):
            return None

    def thumbnail(self, image: dict[str, Any] | None, size: int = THUMBNAIL_PX) -> str | None:
        """A JPEG data URI no larger than ``size`` pixels on its longer side, or ``None``."""
        data = self.read(image)
        return jpeg_thumbnail(data, size) if data is not None else None

    def close(self) -> None:
        for opened in self._tars.values():
            if opened is not None:
                opened[0].close()
        self._tars.clear()


def jpeg_thumbnail(data: bytes, size: int = THUMBNAIL_PX, quality: int = 72) -> str | None:
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with warnings.catch_warnings():
            # a huge web image is not a reason to stop; Pillow still refuses truly absurd ones
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                opened.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
                picture = opened.convert("RGBA") if opened.mode in ("P", "LA", "RGBA") else opened.convert("RGB")
                picture.thumbnail((size, size))
        if picture.mode == "RGBA":
            flat = Image.new("RGB", picture.size, (255, 255, 255))
            flat.paste(picture, mask=picture.getchannel("A"))
            picture = flat
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=quality, optimize=True)
    except Exception:  # noqa: BLE001 - corrupt, truncated or exotic files: no thumbnail, not a broken report
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
