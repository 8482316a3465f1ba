"""What a copy-model file must be before torch opens it, read from the zip archive alone.

``torch.export.load`` unpickles with ``weights_only=False`` whatever an archive marks as pickled
(weights or constants with ``use_pickle``, opaque objects, legacy ``.pt`` members), and falls back
to ``weights_only=False`` for sample inputs that a safe load refuses: a ``.pt2`` file could run code
when loaded. So a ``.pt2`` is accepted only in the current archive format with every weight and
constant stored as raw tensor bytes and sample inputs that load with ``weights_only=True``; a
TorchScript file must be a TorchScript archive (code + constants), not a pickle.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from curate.runfiles import json_value

EXPORT_HINT = "write the model with torch.export.save(torch.export.export(module, (example,)), PATH)"
TORCHSCRIPT_HINT = "write the model with torch.jit.save(torch.jit.script(module), PATH), or use torch.export (.pt2)"


# Bytes a member read at plan time may unpack to (archive_format, the weights' configs, the
# sample inputs: a few kB to a few MB); a 3 MB .pt2 held a sample input deflating to 3 GB.
MAX_MEMBER_BYTES = 64 << 20


def _read(archive: zipfile.ZipFile, name: str) -> bytes:
    """The member's bytes, refused past MAX_MEMBER_BYTES before any is unpacked (zipfile reads
    no more than the size the entry declares)."""
    size = archive.getinfo(name).file_size
    if size > MAX_MEMBER_BYTES:
        raise ValueError(f"its member {name} unpacks to {size:,} bytes, more than the {MAX_MEMBER_BYTES:,} "
                         "such a member may have")
    return archive.read(name)


def _members(path: Path) -> tuple[zipfile.ZipFile | None, str, list[str]]:
    """(the open archive, its root folder with a slash, member names below the root)."""
    if not zipfile.is_zipfile(path):
        return None, "", []
    archive = zipfile.ZipFile(path)
    names = archive.namelist()
    roots = {name.split("/", 1)[0] for name in names}
    root = f"{roots.pop()}/" if len(roots) == 1 else ""
    return archive, root, [name.removeprefix(root) for name in names]


def export_problems(path: Path) -> list[str]:
    """Why ``path`` is not a ``torch.export`` archive that loads without unpickling (empty: it is)."""
    try:
        archive, root, names = _members(path)
    except (OSError, zipfile.BadZipFile) as error:
        return [f"copy model {path} cannot be read as a zip archive ({error}); {EXPORT_HINT}"]
    if archive is None:
        return [f"copy model {path} is not a torch.export program: not a zip archive; {EXPORT_HINT}"]
    with archive:
        try:
            if "archive_format" not in names or _read(archive, root + "archive_format").strip() != b"pt2":
                return [f"copy model {path} is not a torch.export program of the current format "
                        f"(no archive_format 'pt2': an older or other zip); {EXPORT_HINT}"]
            if not any(n.startswith("models/") and n.endswith(".json") for n in names):
                return [f"copy model {path} holds no exported program (models/*.json); {EXPORT_HINT}"]
            pickled = [n for n in names if n.startswith("data/aotinductor/")
                       or (n.startswith(("data/weights/", "data/constants/")) and n.endswith(".pt"))]
            for config_name in [n for n in names if n.startswith(("data/weights/", "data/constants/"))
                                and n.endswith("_config.json")]:
                config = json_value(_read(archive, root + config_name)).get("config", {})
                for fqn, payload in config.items():
                    kept_raw = not payload.get("use_pickle", True)
                    if config_name.startswith("data/constants/"):
                        kept_raw = kept_raw and str(payload.get("path_name", "")).startswith("tensor_")
                    if not kept_raw:
                        pickled.append(f"{config_name}: {fqn}")
            if pickled:
                return [f"copy model {path} is refused: parts of it are pickled objects, which loading would "
                        f"run ({', '.join(pickled[:3])}); only programs whose weights and constants are plain "
                        f"tensors are loaded; {EXPORT_HINT}"]
            samples = [n for n in names if n.startswith("data/sample_inputs/")]
            sample_bytes = [_read(archive, root + n) for n in samples]
        except (OSError, ValueError, KeyError, AttributeError, zipfile.BadZipFile) as error:
            return [f"copy model {path} is not a readable torch.export program ({type(error).__name__}: "
                    f"{str(error)[:200]}); {EXPORT_HINT}"]
    import torch

    for name, data in zip(samples, sample_bytes):
        try:
            torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception:
            # torch.export.load would retry this member with weights_only=False
            return [f"copy model {path} is refused: its {name} is a pickle of more than tensors; {EXPORT_HINT}"]
    return []


def torchscript_problems(path: Path) -> list[str]:
    """Why ``path`` is not a TorchScript archive (empty: it is). ``torch.jit.load`` reads code and
    constants with TorchScript's own loader; a plain ``torch.save`` pickle is not one."""
    try:
        archive, _, names = _members(path)
    except (OSError, zipfile.BadZipFile) as error:
        return [f"copy model {path} cannot be read as a zip archive ({error}); {TORCHSCRIPT_HINT}"]
    if archive is None:
        return [f"copy model {path} is not a TorchScript archive: not a zip file; {TORCHSCRIPT_HINT}"]
    archive.close()
    if "constants.pkl" not in names or not any(n.startswith("code/") for n in names):
        what = " (it looks like a torch.save pickle, e.g. a state dict)" if "data.pkl" in names else ""
        return [f"copy model {path} is not a TorchScript archive: it has no code/ and constants.pkl{what}; "
                f"{TORCHSCRIPT_HINT}"]
    return []
