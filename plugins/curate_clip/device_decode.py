"""JPEGs decoded, resized and center-cropped in batches on the model's device (``decode: device``).

With ``decode: loader`` each DataLoader worker decodes and resizes with PIL; at ViT-B/32 on an
H200 that bounds the step at a quarter of what the model alone does (16 cores decode ~3,200
256×256 JPEGs/s). Here the workers only read the encoded bytes; the main process hands a batch of
them to ``torchvision.io.decode_jpeg`` (nvjpeg on CUDA, libjpeg-turbo on CPU) and applies open_clip's
own Resize and CenterCrop objects to the decoded uint8 tensors, batched by image shape. What
comes out is what the loader path hands over (uint8 pixels before to-tensor/Normalize), up to
the decoders' and resamplers' rounding: scores agree with the loader path to a few 1e-3 (see
tests/clip/test_device_decode.py and the GPU session).

Images that are not JPEG (PNG, WebP, …), and JPEGs the batched decoder refuses (CMYK, an
arithmetic-coded file), go the loader path's way: PIL, in the worker or (after a refusal) in the
main process. An image neither can decode is a row without an image, as on the loader path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from curate.errors import CurateError

JPEG_MAGIC = b"\xff\xd8\xff"


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

    def __init__(self, refs: list[Any], store_dir: str | None, loader_part: Any):
        self.refs, self.store_dir, self.loader_part = refs, store_dir, loader_part

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int) -> tuple[str, Any]:
        import torch

        from curate.images import ImageNotFound, read_image_bytes

        ref = self.refs[index]
        data = None
        if ref is not None:
            try:
                data = read_image_bytes(ref, self.store_dir)
            except (ImageNotFound, OSError, ValueError):
                data = None
        if not data:
            return "none", torch.zeros(0, dtype=torch.uint8)
        if data[:3] == JPEG_MAGIC:
            return "jpeg", torch.frombuffer(bytearray(data), dtype=torch.uint8)
        pixels = pil_pixels(data, self.loader_part)
        return ("pixels", pixels) if pixels is not None else ("none", torch.zeros(0, dtype=torch.uint8))


def collate(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Encoded images differ in length: a batch stays a list (the DataLoader still pins it)."""
    return items


def pil_pixels(data: bytes, loader_part: Any) -> Any | None:
    """The loader path's pixels of one encoded image (None when PIL cannot read it either)."""
    import io

    from PIL import Image

    from curate_clip.score import uint8_pixels

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return uint8_pixels(loader_part(image.convert("RGB")))


def decode_batch(items: list[tuple[str, Any]], transform: Any, loader_part: Any, size: int,
                 device: str) -> tuple[Any, np.ndarray]:
    """(rows, 3, size, size) uint8 pixels on ``device`` and which rows have an image."""
    import torch

    rows = len(items)
    out = torch.zeros((rows, 3, size, size), dtype=torch.uint8, device=device)
    ok = np.zeros(rows, dtype=bool)
    jpegs = [i for i, (kind, _) in enumerate(items) if kind == "jpeg"]
    decoded: dict[int, Any] = {}
    if jpegs:
        images = _decode([items[i][1] for i in jpegs], device)
        if images is not None:
            decoded = dict(zip(jpegs, images, strict=True))
        else:  # one bad file fails the batch: decode one by one, PIL for what the decoder refuses
            for i in jpegs:
                image = _decode([items[i][1]], device)
                if image is not None:
                    decoded[i] = image[0]
                    continue
                pixels = pil_pixels(items[i][1].numpy().tobytes(), loader_part)
                if pixels is not None:
                    out[i] = pixels.to(device)
                    ok[i] = True
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, image in decoded.items():
        by_shape.setdefault(tuple(image.shape), []).append(i)
    for group in by_shape.values():
        stacked = torch.stack([decoded[i] for i in group])
        index = torch.as_tensor(group, device=device)
        out.index_copy_(0, index, transform(stacked))
        ok[group] = True
    for i, (kind, pixels) in enumerate(items):
        if kind == "pixels":
            out[i] = pixels.to(device, non_blocking=True)
            ok[i] = True
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
    if decode == "device" and transform is None:
        raise CurateError("decode: device needs open_clip's standard preprocessing (Resize, CenterCrop, "
                          "to-tensor, Normalize); this model's transform holds other steps",
                          "use decode: loader (or auto) for this model")
    if decode == "auto":
        return "device" if device.startswith("cuda") and transform is not None else "loader"
    return decode
