"""Where downloaded images live, and how img2dataset's output becomes that.

img2dataset names a sample by its position (``shard * 10**k + index``), so its keys change with
the shard size. Once a part is downloaded, its images are re-filed under the row's ``uid``: a tar
member ``<uid>.jpg`` (or a file ``<uid>.jpg`` in ``files`` format). ``uid`` never depends on the
shard layout, so neither does the key, and a webdataset reader that knows nothing of curate gets
``__key__ == uid``, the join key back to every table of the run. (A source's own uid that is not
a safe file name, ``../x`` or ``A.b``, is filed under its :func:`curate.filekeys.file_key`; the
row's ``image.key`` says which.)

Layout of one input shard under the step's ``artifacts`` directory::

    shard-00003/
      urls.parquet      the rows sent to img2dataset (uid, url)
      job.json          the img2dataset.download arguments; download.log its output
      img2dataset/      img2dataset's output folder: NNNNN.parquet and NNNNN_stats.json per part
                        (its tars are removed once re-keyed; the stats files mark parts done)
      00000.tar         part 0's images, re-keyed by uid, in input order
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from curate.atomic import atomic_path

I2D_DIR = "img2dataset"


def part_name(part: int) -> str:
    return f"{part:05d}"  # img2dataset's shard names (oom_shard_count=5)


def stats_path(shard_dir: Path, part: int) -> Path:
    return shard_dir / I2D_DIR / f"{part_name(part)}_stats.json"


def results_path(shard_dir: Path, part: int) -> Path:
    return shard_dir / I2D_DIR / f"{part_name(part)}.parquet"


def image_location(shard_dir: Path, part: int, output_format: str) -> Path:
    """Where part ``part``'s re-keyed images end up: a tar, or a directory of files."""
    return shard_dir / (f"{part_name(part)}.tar" if output_format == "webdataset" else part_name(part))


def rekey(shard_dir: Path, part: int, output_format: str, encode_format: str, uid_by_key: dict[str, str]) -> None:
    """Re-file part ``part``'s images by uid (``uid_by_key`` maps img2dataset's key to the uid's
    file key). Idempotent: a re-run after a crash finishes the job."""
    if output_format == "webdataset":
        source = shard_dir / I2D_DIR / f"{part_name(part)}.tar"
        target = image_location(shard_dir, part, output_format)
        if source.exists():
            _rekey_tar(source, target, encode_format, uid_by_key)
            source.unlink()
        elif not target.exists():
            raise FileNotFoundError(f"img2dataset wrote no {source.name} for a finished part in {shard_dir}")
    else:
        source_dir = shard_dir / I2D_DIR / part_name(part)
        target_dir = image_location(shard_dir, part, output_format)
        if source_dir.is_dir():
            target_dir.mkdir(exist_ok=True)
            for key, uid in uid_by_key.items():
                image = source_dir / f"{key}.{encode_format}"
                if image.exists():
                    os.replace(image, target_dir / f"{uid}.{encode_format}")
            shutil.rmtree(source_dir)
        else:
            target_dir.mkdir(exist_ok=True)  # a part without a single image


def _rekey_tar(source: Path, target: Path, encode_format: str, uid_by_key: dict[str, str]) -> None:
    """Copy the image members of ``source`` into ``target`` as ``<uid>.<ext>``, sorted by
    img2dataset's key (input order), so the same rows always give the same bytes."""
    with tarfile.open(source) as archive:
        members = {}
        for member in archive.getmembers():
            stem, _, extension = member.name.rpartition("/")[2].partition(".")
            if member.isfile() and extension == encode_format:
                members[stem] = member
    with atomic_path(target) as partial, open(source, "rb") as data, \
            tarfile.open(partial, "w", format=tarfile.USTAR_FORMAT) as out:
        for key in sorted(members):
            member = members[key]
            info = tarfile.TarInfo(f"{uid_by_key[key]}.{encode_format}")
            info.size = member.size
            info.mode = 0o644
            data.seek(member.offset_data)
            out.addfile(info, data)  # copies exactly info.size bytes from the current offset
