"""``decode: device``: JPEGs decoded and resized in batches by torchvision (nvjpeg on CUDA; here
libjpeg-turbo on the CPU, the same code path) give the image embeddings the PIL loader path gives,
within the resamplers' rounding; other formats take the PIL path (identical); an image no decoder
reads is a row without an image, as on the loader path."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from curate.errors import CurateError
from curate_clip import device_decode
from curate_clip.score import ClipScore, split_preprocess, uint8_pixels

# The bound on the two paths' unit image embeddings' difference (its L2 norm bounds any cosine
# score's difference). On the CPU the paths agree exactly (measured: 0.0 over 30 photo-like JPEGs
# of 40..700 px, world CLIP and ViT-B/32: libjpeg-turbo both, and torchvision's uint8 bicubic
# matches PIL's). On CUDA nvjpeg's IDCT and the float resampler move pixels by a level or two:
# the GPU session measures that difference (benchmarks/gpu_session.py, max_score_difference).
EMBEDDING_TOLERANCE = 0.02
PIXEL_MEAN_TOLERANCE = 1.5  # mean absolute difference, in 0..255 levels


def photo(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    colours = rng.uniform(0, 255, (2, 3))
    background = (colours[0] * (x / width)[..., None] + colours[1] * (y / height)[..., None]) / 1.5
    image = Image.fromarray(background.clip(0, 255).astype("uint8"))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(4, max(5, width // 2))), int(rng.integers(4, max(5, height // 2)))
        draw.ellipse([x0, y0, x0 + w, y0 + h], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return image


def encoded(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def write(folder, files: dict[str, bytes]) -> list[dict[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    refs = []
    for key, data in files.items():
        ext = "jpg" if data[:3] == device_decode.JPEG_MAGIC else "png" if data[:4] == b"\x89PNG" else "jpg"
        (folder / f"{key}.{ext}").write_bytes(data)
        refs.append({"shard": str(folder), "key": key})
    return refs


def embeddings(model: str, refs: list, decode: str, workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    step = ClipScore(ClipScore.Params(model=model, decode=decode, device="cpu", batch_size=8, workers=workers))
    torch.manual_seed(0)  # ViT-B-32 has no weights here: both paths get the same random ones
    step.setup(None)  # type: ignore[arg-type]
    ctx = SimpleNamespace(extras={}, advance=lambda n: None)
    return step._image_embeddings(refs, ctx)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["world-clip-tiny", "ViT-B-32"])
def model(request):
    return request.param


def test_device_decode_agrees_with_the_loader(tmp_path, model):
    sizes = [(256, 256), (256, 256), (320, 200), (97, 301), (64, 64), (500, 375), (33, 17), (256, 256), (640, 480)]
    files = {f"{i:03d}": encoded(photo(w, h, i), quality=90) for i, (w, h) in enumerate(sizes)}
    files["gray"] = encoded(photo(120, 90, 99).convert("L"))  # a grayscale JPEG: decoded to RGB as PIL does
    files["png"] = encoded(photo(150, 100, 7), "PNG")  # not a JPEG: PIL in the worker
    refs = write(tmp_path / "images", files)
    loader, present_loader = embeddings(model, refs, "loader")
    device, present_device = embeddings(model, refs, "device", workers=1)
    assert present_loader.all() and present_device.all()
    difference = np.linalg.norm(loader - device, axis=1)
    assert difference.max() < EMBEDDING_TOLERANCE, difference
    assert difference[-1] == 0.0  # the PNG went the same PIL way


def test_corrupt_and_missing_images_are_rows_without_an_image(tmp_path):
    good = encoded(photo(80, 60, 1))
    files = {"good": good, "truncated": good[: len(good) // 2], "garbage": device_decode.JPEG_MAGIC + b"\x00" * 64,
             "good2": encoded(photo(80, 60, 2))}
    refs = write(tmp_path / "images", files) + [None]
    for decode in ("loader", "device"):
        _, present = embeddings("world-clip-tiny", refs, decode)
        assert present.tolist() == [True, False, False, True, False], decode


def test_resolve_decode():
    from torchvision.transforms import Compose, Lambda, Resize

    assert device_decode.resolve_decode("auto", "cpu", object()) == "loader"
    assert device_decode.resolve_decode("auto", "cuda", object()) == "device"
    assert device_decode.resolve_decode("auto", "cuda", None) == "loader"
    assert device_decode.device_transform(Compose([Resize(8), Lambda(lambda x: x)])) is None
    with pytest.raises(CurateError, match="decode: loader"):
        device_decode.resolve_decode("device", "cpu", None)


@pytest.fixture(scope="module")
def world_transform():
    from curate_clip.models import load_clip

    loader_part, _ = split_preprocess(load_clip("world-clip-tiny", device="cpu").preprocess)
    return loader_part


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.integers(16, 300), height=st.integers(16, 300), seed=st.integers(0, 2**16))
def test_batched_decode_pixels_match_pil_within_rounding(world_transform, width, height, seed):
    data = encoded(photo(width, height, seed), quality=90)
    transform = device_decode.device_transform(world_transform)
    items = [("jpeg", torch.frombuffer(bytearray(data), dtype=torch.uint8))] * 2 + [("none", torch.zeros(0))]
    pixels, ok = device_decode.decode_batch(device_decode.collate(items), transform, world_transform, 64, "cpu")
    assert ok.tolist() == [True, True, False]
    reference = uint8_pixels(world_transform(Image.open(io.BytesIO(data)).convert("RGB")))
    assert pixels.shape == (3, 3, 64, 64) and pixels.dtype == torch.uint8
    assert torch.equal(pixels[0], pixels[1]) and not pixels[2].any()
    assert (pixels[0].float() - reference.float()).abs().mean() < PIXEL_MEAN_TOLERANCE


@pytest.mark.gpu
def test_nvjpeg_decode_agrees_with_the_loader(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    sizes = [(256, 256)] * 6 + [(320, 200), (97, 301), (500, 375), (640, 480)]
    files = {f"{i:03d}": encoded(photo(w, h, i), quality=90) for i, (w, h) in enumerate(sizes)}
    good = files["000"]
    files.update({"truncated": good[: len(good) // 2], "png": encoded(photo(150, 100, 7), "PNG")})
    refs = write(tmp_path / "images", files)
    results = {}
    for decode in ("loader", "device"):
        step = ClipScore(ClipScore.Params(model="ViT-B-32", decode=decode, device="cuda", batch_size=8, workers=2))
        torch.manual_seed(0)
        step.setup(None)  # type: ignore[arg-type]
        results[decode] = step._image_embeddings(refs, SimpleNamespace(extras={}, advance=lambda n: None))
    assert results["loader"][1].tolist() == results["device"][1].tolist() == [True] * 10 + [False, True]
    difference = np.linalg.norm(results["loader"][0] - results["device"][0], axis=1)
    assert difference.max() < EMBEDDING_TOLERANCE, difference
