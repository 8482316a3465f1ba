"""JPEGs decoded, resized and center-cropped in batches on the model's device (``decode: device``).

With ``decode: loader`` each DataLoader worker decodes and resizes with PIL; at ViT-B/32 on an
H200 that bounds the step at a quarter of what the model alone does (16 cores decode ~3,200
256×256 JPEGs/s). Here the workers only read the encoded bytes; the main process hands a batch of
them to ``torchvision.io.decode_jpeg`` (nvjpeg on CUDA, libjpeg-turbo on CPU) and applies open_clip's
own Resize and CenterCrop objects to the decoded uint8 tensors, batched by image shape. What
comes out is what the loader path hands over (uint8 pixels before to-tensor/Normalize), up to
the decoders' and resamplers' rounding: scores agree with the loader path to a few 1e-3 (see
tests/clip/test_device_decode.py and the GPU session).

``decode: workers`` splits the work the other way: each DataLoader worker decodes its JPEGs with
the same ``decode_jpeg`` on the CPU (libjpeg-turbo: Huffman and IDCT, no resize), the batch goes
to the device as uint8 images grouped by shape, and the device resizes and crops them. On the H200
the batched nvjpeg decode does its Huffman stage on the host, in the main process, one thread:
that bounded ViT-B/32 at ~3.8k img/s with 16 idle workers. Here the host stage runs in every
worker at once; the main process only copies (pinned) and launches.

Images that are not JPEG (PNG, WebP, …), JPEGs that an EXIF orientation turns, and JPEGs the
batched decoder refuses (CMYK, an arithmetic-coded file), go the loader path's way: PIL, in the
worker or (after a refusal) in the main process. An image neither can decode is a row without an
image, as on the loader path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from curate.errors import CurateError
from curate.images import ImageFolders
from curate.jpeg import JPEG_MAGIC, jpeg_orientation, whole_jpeg

__all__ = ["JPEG_MAGIC", "EncodedImages", "collate", "decode_batch", "device_transform", "pil_pixels",
           "resolve_decode", "whole_jpeg"]


def device_transform(loader_part: Any) -> Any | None:
    """open_clip's loader transform (without to-tensor/Normalize) as the steps a decoded uint8
    tensor batch can go through: its Resize and CenterCrop objects, which torchvision applies to
    tensors as it does to PIL images. None when the transform holds anything else (a custom
    preprocess): then images can only be prepared in the loader."""
    from torchvision.transforms import CenterCrop, Compose, Resize

    kept = []
    for step in list(getattr(loader_part, "transforms", None) or []):
        if isinstance(step, (Resize, CenterCrop)):
            kept.append(step)
        elif type(step).__name__ == "MaybeConvertMode" or getattr(step, "__name__", "") == "_convert_to_rgb":
            continue  # decode_jpeg's ImageReadMode.RGB does the conversion
        else:
            return None
    return Compose(kept) if kept else None


class EncodedImages:
    """A map-style dataset for ``decode: device``: row index → ("jpeg", encoded bytes as a uint8
    tensor), ("pixels", the loader path's uint8 pixels for any other format) or ("none", empty)."""

    def __init__(self, refs: list[Any], store_dir: str | None, loader_part: Any, decode_here: bool = False,
                 within: ImageFolders | None = None):
        """``decode_here``: decode JPEGs in the worker (``decode: workers``): ("decoded", the
        (3, H, W) uint8 image) instead of ("jpeg", bytes). ``within``: the only folders images are
        read from (an untrusted spec's); one outside is ("none", …), as a missing one, and not read."""
        self.refs, self.store_dir, self.loader_part = refs, store_dir, loader_part
        self.decode_here, self.within = decode_here, within

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int) -> tuple[str, Any]:
        import torch

        from curate.images import ImageNotFound, read_image_bytes

        ref = self.refs[index]
        data = None
        if ref is not None:
            try:
                data = read_image_bytes(ref, self.store_dir, within=self.within)
            except (ImageNotFound, OSError, ValueError):
                data = None
        if not data:
            return "none", torch.zeros(0, dtype=torch.uint8)
        if whole_jpeg(data) and jpeg_orientation(data) == 1:  # a turned one: PIL turns it, as the loader
            encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            if not self.decode_here:
                return "jpeg", encoded
            images = _decode([encoded], "cpu")
            if images is not None:
                return "decoded", images[0]
        pixels = pil_pixels(data, self.loader_part)
        return ("pixels", pixels) if pixels is not None else ("none", torch.zeros(0, dtype=torch.uint8))


def collate(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """A batch packed in the worker: every JPEG's bytes in one uint8 tensor (with their lengths),
    every PIL-prepared image in one pixel tensor. One shared-memory block per batch instead of
    one per image is what lets a few workers keep up with a GPU decoder."""
    import torch

    kinds = [kind for kind, _ in items]
    encoded = [data for kind, data in items if kind == "jpeg"]
    pixels = [data for kind, data in items if kind == "pixels"]
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, (kind, data) in enumerate(items):
        if kind == "decoded":
            by_shape.setdefault(tuple(data.shape), []).append(i)
    return {
        "kinds": kinds,
        "lengths": [int(data.numel()) for data in encoded],
        "data": torch.cat(encoded) if encoded else torch.zeros(0, dtype=torch.uint8),
        "pixels": torch.stack(pixels) if pixels else None,
        # decode: workers: the decoded images, one (row indices, stacked images) per image shape
        "decoded": [(torch.as_tensor(rows), torch.stack([items[i][1] for i in rows])) for rows in by_shape.values()],
    }


def pil_pixels(data: bytes, loader_part: Any) -> Any | None:
    """The loader path's pixels of one encoded image (None when PIL cannot read it either)."""
    from curate.images import decode_rgb
    from curate_clip.score import uint8_pixels

    image = decode_rgb(data)
    return None if image is None else uint8_pixels(loader_part(image))


def decode_batch(batch: dict[str, Any], transform: Any, loader_part: Any, size: int,
                 device: str) -> tuple[Any, np.ndarray]:
    """A :func:`collate` batch as (rows, 3, size, size) uint8 pixels on ``device``, and which
    rows have an image."""
    import torch

    kinds = batch["kinds"]
    rows = len(kinds)
    out = torch.zeros((rows, 3, size, size), dtype=torch.uint8, device=device)
    ok = np.zeros(rows, dtype=bool)
    jpegs = [i for i, kind in enumerate(kinds) if kind == "jpeg"]
    encoded = dict(zip(jpegs, torch.split(batch["data"], batch["lengths"]), strict=True)) if jpegs else {}
    decoded: dict[int, Any] = {}
    if jpegs:
        images = _decode([encoded[i] for i in jpegs], device)
        if images is not None:
            decoded = dict(zip(jpegs, images, strict=True))
        else:  # one bad file fails the batch: decode one by one, PIL for what the decoder refuses
            for i in jpegs:
                image = _decode([encoded[i]], device)
                if image is not None:
                    decoded[i] = image[0]
                    continue
                pixels = pil_pixels(encoded[i].numpy().tobytes(), loader_part)
                if pixels is not None:
                    out[i] = pixels.to(device)
                    ok[i] = True
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, image in decoded.items():
        by_shape.setdefault(tuple(image.shape), []).append(i)
    for group in by_shape.values():
        stacked = torch.stack([decoded[i] for i in group])
        out.index_copy_(0, torch.as_tensor(group, device=device), transform(stacked))
        ok[group] = True
    for rows_of, images in batch.get("decoded", ()):  # decode: workers
        cuda = str(device).startswith("cuda")
        out.index_copy_(0, rows_of.to(device, non_blocking=cuda), transform(images.to(device, non_blocking=cuda)))
        ok[rows_of.numpy()] = True
    prepared = [i for i, kind in enumerate(kinds) if kind == "pixels"]
    if prepared:
        out.index_copy_(0, torch.as_tensor(prepared, device=device), batch["pixels"].to(device))
        ok[prepared] = True
    return out, ok


def _decode(data: list[Any], device: str) -> list[Any] | None:
    """Decoded RGB images, or None when the decoder fails or warns (libjpeg decodes a truncated
    file with a warning and gray rows; PIL refuses it, and so does this path)."""
    import warnings

    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:
            return None
    return None if caught else list(images)


def resolve_decode(decode: str, device: str, transform: Any | None) -> str:
    """``loader`` or ``device`` for this run: auto is device on CUDA when the transform allows."""
    if decode in ("device", "workers") and transform is None:
        raise CurateError(f"decode: {decode} needs open_clip's standard preprocessing (Resize, CenterCrop, "
                          "to-tensor, Normalize); this model's transform holds other steps",
                          "use decode: loader (or auto) for this model")
    if decode == "auto":
        return "device" if device.startswith("cuda") and transform is not None else "loader"
    return decode
