"""4000x4000 versions of the "oversized" URLs' images, made on the fly and kept in memory.

Making one takes 0.2-0.4 s (16 million pixels to resize and encode). Made on request only, a
downloader that asks for several at once would wait longer than its timeout and see "slow"
instead of "oversized". So the server also makes them ahead of time in one background thread,
in table order, and a request for one not made yet makes it itself, holding only that image's lock.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

OVERSIZED_SIDE = 4000


class OversizedImages:
    def __init__(self, files: dict[str, Path]):
        self._files = files  # name -> the normal-size image it is blown up from
        self._images: dict[str, bytes] = {}
        self._locks = {name: threading.Lock() for name in files}

    def get(self, name: str) -> bytes:
        with self._locks[name]:
            if name not in self._images:
                self._images[name] = _blow_up(self._files[name])
            return self._images[name]

    def warm(self, stopping: threading.Event) -> None:
        """Make every image ahead of requests; returns early once ``stopping`` is set."""
        for name in self._files:
            if stopping.is_set():
                return
            self.get(name)


def _blow_up(path: Path) -> bytes:
    from PIL import Image

    with Image.open(path) as image:
        big = image.convert("RGB").resize((OVERSIZED_SIDE, OVERSIZED_SIDE), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=75)
    return buffer.getvalue()
