"""clip_score hands the device uint8 pixels and normalizes there: the same numbers as open_clip's
whole transform run on the CPU, for any image size and mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from curate_clip.models import load_clip
from curate_clip.score import _Images, split_preprocess, uint8_pixels


@pytest.fixture(scope="module", params=["world-clip-tiny", "ViT-B-32"])
def clip(request):
    return load_clip(request.param, device="cpu")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.integers(1, 300), height=st.integers(1, 300), mode=st.sampled_from(["RGB", "L", "RGBA", "P"]),
       seed=st.integers(0, 2**32 - 1))
def test_split_transform_equals_the_whole_one(clip, width, height, mode, seed):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)
    split = split_preprocess(clip.preprocess)
    assert split is not None
    loader_part, normalize = split
    whole = clip.preprocess(image.convert("RGB"))
    pixels = uint8_pixels(loader_part(image.convert("RGB")))
    assert pixels.dtype == torch.uint8
    assert torch.equal(normalize(pixels.float().div_(255)), whole)


def test_a_transform_without_normalize_runs_whole_in_the_loader():
    from torchvision.transforms import Compose, Resize, ToTensor

    assert split_preprocess(Compose([Resize(8), ToTensor()])) is None
    assert split_preprocess(lambda image: image) is None


def test_missing_image_is_a_zero_uint8_tensor_marked_absent():
    dataset = _Images([None], None, None, 7, as_uint8=True)
    pixels, present = dataset[0]
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 7, 7) and not present
