"""WebDataset tar shards written as samples arrive: one sample in memory at a time.

Members carry mtime 0, mode 0o644 and no owner, so identical inputs give byte-identical tars.

Not webdataset's ``TarWriter``/``ShardWriter``: it writes a sample's members sorted by extension
(``jpg, json, txt``) where these exports have always been ``jpg, txt, json``. Measured with
webdataset 0.2.86 on a 300-row export, given our user/group (""), mode (0o644) and mtime (0):
the same 143360 bytes, a different sha256; our writer given TarWriter's member order reproduces
its bytes exactly, so the order is the only difference (.scratch check, 2026-12-04). Keeping our
order keeps every existing export (and every checkpoint trained on one) byte-identical.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0  # byte-identical exports for identical inputs
    tar.addfile(info, io.BytesIO(data))


class TarShards:
    """``00000.tar``, ``00001.tar`` … in ``folder``, ``per_shard`` samples each; a sample is a key
    and its members ``(extension, bytes)``, written in the order given. ``wrote`` (a
    :class:`curate.diskspace.SpaceGuard`'s) is told the bytes of each sample before it is written."""

    def __init__(self, folder: Path, per_shard: int, wrote: Callable[[int], None] | None = None):
        self.folder = folder
        self.per_shard = per_shard
        self.wrote = wrote
        self.paths: list[Path] = []
        self.counts: list[int] = []  # samples per shard
        self._tar: tarfile.TarFile | None = None

    @property
    def written(self) -> int:
        return sum(self.counts)

    def add(self, key: str, members: Iterable[tuple[str, bytes]]) -> None:
        if self._tar is None or self.counts[-1] == self.per_shard:
            self._roll()
        assert self._tar is not None
        members = list(members)
        if self.wrote is not None:  # a member is a 512-byte header and its data in 512-byte blocks
            self.wrote(sum(512 + -(-len(data) // 512) * 512 for _, data in members))
        for extension, data in members:
            _add(self._tar, f"{key}.{extension}", data)
        self.counts[-1] += 1

    def _roll(self) -> None:
        self.close()
        path = self.folder / f"{len(self.paths):05d}.tar"
        self.paths.append(path)
        self.counts.append(0)
        self._tar = tarfile.open(path, "w")  # noqa: SIM115 - kept open across samples, closed on rollover

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def __enter__(self) -> TarShards:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
