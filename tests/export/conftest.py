from __future__ import annotations

import io
import tarfile
from pathlib import Path

import polars as pl
import pytest

COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 40)}


def make_store(store: Path, n: int, *, png_every: int = 5) -> pl.DataFrame:
    """A store tar of solid-colour images and a mixed table pointing into it (a missing image too)."""
    from PIL import Image

    store.mkdir(parents=True, exist_ok=True)
    names = list(COLORS)
    rows = []
    with tarfile.open(store / "00000.tar", "w") as tar:
        for i in range(n):
            uid = f"{i:016x}"
            color = names[i % len(names)]
            buffer = io.BytesIO()
            ext = "png" if png_every and i % png_every == 0 else "jpg"
            Image.new("RGB", (32, 32), COLORS[color]).save(buffer, format="PNG" if ext == "png" else "JPEG")
            info = tarfile.TarInfo(f"{uid}.{ext}")
            info.size = buffer.tell()
            buffer.seek(0)
            tar.addfile(info, buffer)
            rows.append({"uid": uid, "image": {"shard": "00000.tar", "key": uid}, "alt_text": f"img {i}",
                         "caption": f"a {color} square", "caption_source": "synthetic",
                         "captions": [f"img {i}", f"a {color} square"], "color": color})
    rows.append({"uid": f"{n:016x}", "image": None, "alt_text": "no image", "caption": "none",
                 "caption_source": "original", "captions": ["none"], "color": "red"})
    return pl.DataFrame(rows)


@pytest.fixture
def store_table(tmp_path: Path) -> tuple[Path, pl.DataFrame]:
    store = tmp_path / "store"
    return store, make_store(store, 24)
