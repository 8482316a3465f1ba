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
from PIL import Image

from curate.errors import CurateError
from curate_clip import device_decode
from curate_clip.score import ClipScore, split_preprocess, uint8_pixels
from tests.clip.jpegs import EMBEDDING_TOLERANCE, PIXEL_MEAN_TOLERANCE, encoded, photo, write

def embeddings(model: str, refs: list, decode: str, workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    step = ClipScore(ClipScore.Params(model=model, decode=decode, device="cpu", batch_size=8, workers=workers))
    torch.manual_seed(0)  # ViT-B-32 has no weights here: both paths get the same random ones
    step.setup(None)  # type: ignore[arg-type]
    ctx = SimpleNamespace(extras={}, advance=lambda n: None, image_folders=None)
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
    # decode: workers runs the same decoder (libjpeg-turbo here) in the workers and the same
    # resize/crop on the device: on the CPU, the very embeddings of decode: device.
    workers, present_workers = embeddings(model, refs, "workers", workers=2)
    assert present_workers.all()
    np.testing.assert_array_equal(workers, device)


def test_corrupt_and_missing_images_are_rows_without_an_image(tmp_path):
    good = encoded(photo(80, 60, 1))
    files = {"good": good, "truncated": good[: len(good) // 2], "garbage": device_decode.JPEG_MAGIC + b"\x00" * 64,
             "good2": encoded(photo(80, 60, 2))}
    refs = write(tmp_path / "images", files) + [None]
    for decode in ("loader", "device", "workers"):
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


@given(st.integers(min_value=1, max_value=4000))
@settings(max_examples=30, deadline=None)
def test_only_whole_jpegs_go_to_the_batched_decoder(cut):
    """nvjpeg decodes a truncated JPEG (grey rows) where PIL refuses it (found on an H200): a file
    cut anywhere before its end marker takes the PIL path, which refuses it like the loader does."""
    from curate_clip.device_decode import whole_jpeg
    from tests.clip.jpegs import encoded, photo

    data = encoded(photo(64, 48, 1), quality=90)
    assert whole_jpeg(data) and whole_jpeg(data + b"\x00\x00")
    assert not whole_jpeg(data[: max(3, len(data) - cut)])
    assert not whole_jpeg(b"\x89PNG\r\n\x1a\n" + data[3:])
