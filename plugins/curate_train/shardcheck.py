"""Before open_clip_train reads WebDataset shards: each tar must give it a sample.

open_clip_train skips a sample (or a tar) it cannot read, logs it, and repeats its pass over the
shards until it has an epoch's batches (webdataset's ``with_epoch``). Shards that give no sample,
or fewer than one batch, so never end: a tar of random bytes logged ~8,000 lines a second into the
run's ``out.log`` until the disk filled, and a 16-sample export with ``--batch-size 32`` spun
silently. These checks read each tar only up to its first sample that decodes.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tarfile
from pathlib import Path

from curate.runfiles import describe_mode

# open_clip_train keeps a sample with a caption and an image, renamed image="jpg;png;jpeg;webp", text="txt"
IMAGE_EXTENSIONS = ("jpg", "png", "jpeg", "webp")
CAPTION_EXTENSION = "txt"
# webdataset's split of a member's name into the sample's key and the field (base_plus_ext)
KEY_AND_FIELD = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
SAMPLES_LOOKED_AT = 64  # a tar whose first 64 samples are all unreadable is refused, not read to its end
MAX_MEMBER_BYTES = 256 << 20  # one image or caption of a sample


def tar_problem(path: Path) -> str | None:
    """Why open_clip_train would get no sample from the tar at ``path``; None when one of its first
    samples has a caption and an image that decodes."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if not stat.S_ISREG(mode):
        return f"is {describe_mode(mode)}, not a tar file"
    try:
        with tarfile.open(path, "r:") as tar:
            return _first_samples_problem(tar)
    except (tarfile.TarError, OSError, EOFError) as error:
        return f"is not a tar file open_clip_train can read ({type(error).__name__}: {error})"


def _first_samples_problem(tar: tarfile.TarFile) -> str | None:
    sample: dict[str, bytes] = {}
    key, looked, last = None, 0, "it holds no files"
    for member in tar:
        found = KEY_AND_FIELD.match(member.name) if member.isfile() else None
        if found is None:
            continue
        name, field = found.group(1), found.group(2).lower()
        if name != key:
            if key is not None:
                last = _sample_problem(key, sample)
                if last is None:
                    return None
                looked += 1
                if looked >= SAMPLES_LOOKED_AT:
                    return f"none of its first {looked} samples is one open_clip_train can read ({last})"
            key, sample = name, {}
        if field in (*IMAGE_EXTENSIONS, CAPTION_EXTENSION):
            if member.size > MAX_MEMBER_BYTES:
                return f"its member {member.name} is {member.size:,} bytes, more than an image or caption of a sample"
            handle = tar.extractfile(member)
            sample[field] = handle.read() if handle is not None else b""
    if key is not None:
        last = _sample_problem(key, sample)
        if last is None:
            return None
    return f"no sample in it is one open_clip_train can read ({last})"


def _sample_problem(key: str, sample: dict[str, bytes]) -> str | None:
    from PIL import Image

    image = next((sample[field] for field in IMAGE_EXTENSIONS if field in sample), None)
    if image is None or CAPTION_EXTENSION not in sample:
        return f"sample '{key}' has no {'image' if image is None else 'caption (.txt)'}"
    try:
        sample[CAPTION_EXTENSION].decode("utf-8")
        with Image.open(io.BytesIO(image)) as decoded:
            decoded.convert("RGB")
    except Exception as error:  # PIL raises many kinds; any of them makes open_clip_train skip the sample
        return f"sample '{key}' does not decode ({type(error).__name__})"
    return None


def shards_problems(shards: Path, names: list[str], sizes: dict[str, int] | None = None) -> list[str]:
    """One line for each tar of ``names`` (in ``shards``) that would give open_clip_train no sample,
    or (with ``sizes``, the export's ``sizes.json``) holds fewer samples than it lists."""
    problems = []
    for name in names:
        problem = tar_problem(shards / name)
        if problem is None and sizes is not None and isinstance(sizes.get(name), int):
            problem = count_problem(shards / name, sizes[name])
        if problem:
            problems.append(f"{shards / name} {problem}")
    return problems


def count_problem(path: Path, listed: int) -> str | None:
    """Why the tar at ``path`` does not hold the ``listed`` samples (samples with an image) its
    export's ``sizes.json`` says: a tar cut short trained with exit 0, open_clip_train filling the
    epoch by reading the other shards again, 4 warnings among 178 lines. Reads the members'
    headers only (a seek past each member's data)."""
    keys: set[str] = set()
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                found = KEY_AND_FIELD.match(member.name) if member.isfile() else None
                if found is not None and found.group(2).lower() in IMAGE_EXTENSIONS:
                    keys.add(found.group(1))
    except (tarfile.TarError, OSError, EOFError) as error:
        return (f"is cut short or damaged after {len(keys):,} of the {listed:,} samples sizes.json lists "
                f"({type(error).__name__}: {error})")
    if len(keys) < listed:
        return f"holds {len(keys):,} samples where sizes.json lists {listed:,}: it is cut short or was changed"
    return None
