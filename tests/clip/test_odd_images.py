"""clip_score's loader sees each file as every step does (curate.images.decode_rgb): transparency
on white (it showed the black under it), a turned JPEG upright, and a decompression bomb as a row
without an image (it failed the whole step: DecompressionBombError is no OSError)."""

from __future__ import annotations

from curate_clip.score import _Images

from curate.images import clear_cache
from tests.odd_images import GREY, write_odd_images


def test_the_loader_decodes_as_every_step_does(tmp_path):
    refs = write_odd_images(tmp_path / "images")
    clear_cache()
    keys = ["transparent", "rotated", "bomb", "truncated", "html"]
    images = _Images([refs[key] for key in keys], None, lambda image: image, 8, as_uint8=True)
    transparent, present = images[0]
    assert present and transparent[:, 4, 2].tolist() == [255, 255, 255]  # was [0, 0, 0]
    assert transparent[:, 4, 12].tolist() == list(GREY)
    rotated, present = images[1]
    assert present and tuple(rotated.shape) == (3, 32, 16)  # was (3, 16, 32): sideways
    assert rotated[0, 4, 12] > 200 and rotated[2, 4, 12] < 60  # the red quarter, top-right once upright
    for index in (2, 3, 4):
        pixels, present = images[index]
        assert not present and tuple(pixels.shape) == (3, 8, 8)


def test_a_turned_jpeg_is_decoded_upright_on_the_device_path_too(tmp_path):
    """``decode: device`` sends whole JPEGs to torchvision's batched decoder, which ignores EXIF:
    a turned one goes the loader's way (PIL, upright), as CMYK ones do."""
    from curate_clip.device_decode import EncodedImages

    refs = write_odd_images(tmp_path / "images")
    clear_cache()
    images = EncodedImages([refs["rotated"], refs["plain"]], None, lambda image: image)
    (kind, pixels), (plain_kind, _) = images[0], images[1]
    assert (kind, tuple(pixels.shape), plain_kind) == ("pixels", (3, 32, 16), "jpeg")
