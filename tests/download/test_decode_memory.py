"""The download step's bound on decoding memory: every image's cost is read from its header before
anything decodes it (``header.py``), at least what OpenCV, Pillow and img2dataset's resizer really
allocate, and an image over ``max_decode_bytes`` is refused (``fetch.check_image``)."""

from __future__ import annotations

import io
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np
import polars as pl
import pytest
from curate_download.fetch import DECODE_TOO_LARGE, FetchLimits, ImageTooLarge, check_image
from curate_download.header import JPEG_FRAME_MARKERS, ImageHeader, read_header
from curate_download.imagestore import record_key
from curate_download.pixels import DecoderAsShown
from curate_download.step import DownloadParams, _status
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import ValidationError

from tests.download.conftest import run_download
from tests.download.hostile import deep_png, serve_hostile

cv2 = pytest.importorskip("cv2")

RESIZED = 16  # the resizer's image_size here: its output is a few KB beside the decoded image
RESIZER_ALLOWANCE = 256 * 2**10  # the resized and re-encoded output, albumentations' objects


def _array(rng: np.random.Generator, width: int, height: int, channels: int, dtype: str) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype == "float32":
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def _image(rng: np.random.Generator, mode: str, width: int, height: int) -> Image.Image:
    if mode in ("I;16", "F"):
        return Image.fromarray(_array(rng, width, height, 1, "uint16" if mode == "I;16" else "float32"))
    if mode == "I":
        return Image.fromarray(rng.integers(0, 2**31 - 1, (height, width), dtype=np.int32))
    alpha = mode in ("LA", "RGBA")  # the others from RGB: no transparency unless asked (Pillow's "P" keeps it)
    array = _array(rng, width, height, 4 if alpha else 3, "uint8")
    return Image.fromarray(array, "RGBA" if alpha else "RGB").convert(mode)


def _by_opencv(extension: str, channels: int, dtype: str, rng: np.random.Generator, width: int,
               height: int) -> bytes:
    ok, buffer = cv2.imencode(extension, _array(rng, width, height, channels, dtype))
    assert ok
    return buffer.tobytes()


def _by_pillow(form: str, mode: str, options: dict[str, Any], rng: np.random.Generator, width: int,
               height: int) -> bytes:
    image = _image(rng, mode, width, height)
    save = {name: value for name, value in options.items() if name != "animated"}
    if options.get("animated"):
        second = image.copy()
        second.putpixel((0, 0), 1 if image.mode == "P" else (9, 9, 9))
        save.update(save_all=True, append_images=[second])
    buffer = io.BytesIO()
    image.save(buffer, form, **save)
    return buffer.getvalue()


def _without_alpha_mask(rng: np.random.Generator, width: int, height: int) -> bytes:
    """OpenCV's 32-bit BMP (BITMAPV4HEADER, bit fields) with its alpha mask zeroed: Pillow then
    reads RGB, OpenCV still four channels."""
    bmp = _by_opencv(".bmp", 4, "uint8", rng, width, height)
    return bmp[:66] + bytes(4) + bmp[70:]


def _rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif.tobytes()


def _makers() -> dict[str, Callable[[np.random.Generator, int, int], bytes]]:
    """Every way of writing an image these tests know: OpenCV's encoders for 16-bit and
    multi-channel samples, Pillow's for modes, palettes, transparency and animation."""
    makers: dict[str, Callable[[np.random.Generator, int, int], bytes]] = {}
    for extension, dtypes, channel_counts in (
            (".png", ("uint8", "uint16"), (1, 3, 4)), (".tiff", ("uint8", "uint16"), (1, 3, 4)),
            (".tiff", ("float32",), (1,)), (".pgm", ("uint8", "uint16"), (1,)), (".ppm", ("uint8", "uint16"), (3,)),
            (".bmp", ("uint8",), (1, 3, 4)), (".webp", ("uint8",), (3, 4)), (".jpg", ("uint8",), (1, 3))):
        for dtype in dtypes:
            for channels in channel_counts:
                makers[f"cv2 {extension} {channels}x{dtype}"] = partial(_by_opencv, extension, channels, dtype)
    makers["cv2 .bmp 4xuint8 without an alpha mask"] = _without_alpha_mask
    for form, modes in (("PNG", ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")), ("JPEG", ("L", "RGB", "CMYK")),
                        ("GIF", ("P", "L", "RGB")), ("WEBP", ("RGB", "RGBA")), ("BMP", ("1", "L", "P", "RGB", "RGBA")),
                        ("TIFF", ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F")),
                        ("JPEG2000", ("L", "RGB", "RGBA")), ("PPM", ("1", "L", "RGB", "I"))):
        for mode in modes:
            makers[f"pillow {form} {mode}"] = partial(_by_pillow, form, mode, {})
    for form, mode in (("PNG", "L"), ("PNG", "P"), ("PNG", "RGB"), ("GIF", "P")):
        transparency = (0, 0, 0) if mode == "RGB" else 0
        makers[f"pillow {form} {mode} transparent"] = partial(_by_pillow, form, mode, {"transparency": transparency})
    for form, mode in (("GIF", "P"), ("PNG", "RGB"), ("WEBP", "RGB")):
        makers[f"pillow {form} {mode} animated"] = partial(_by_pillow, form, mode, {"animated": True})
    for mode in ("L", "RGB", "CMYK"):  # a phone photo held upright: turned by the worker's decoder
        makers[f"pillow JPEG {mode} EXIF-rotated"] = partial(_by_pillow, "JPEG", mode, {"exif": _rotated()})
    return makers


MAKERS = _makers()


def _opencv(data: bytes) -> np.ndarray:
    """As img2dataset decodes."""
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    return decoded


def _pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


sizes = {"width": st.integers(1, 96), "height": st.integers(1, 96), "seed": st.integers(0, 2**32)}


@pytest.mark.parametrize("maker", sorted(MAKERS))
@settings(max_examples=8, deadline=None)
@given(**sizes)
def test_the_estimate_covers_what_opencv_and_pillow_decode(maker: str, width: int, height: int, seed: int) -> None:
    data = MAKERS[maker](np.random.default_rng(seed), width, height)
    header = read_header(data)
    assert header is not None, maker
    decoded = _opencv(data)
    assert (header.height, header.width) == decoded.shape[:2], maker
    assert header.decoded_bytes >= decoded.nbytes, (maker, header)
    four = decoded.ndim == 3 and decoded.shape[2] == 4
    assert header.alpha or not four, (maker, header)  # every image img2dataset would blend is counted so
    pillow = _pillow(data)
    assert header.decoded_bytes >= pillow.nbytes, (maker, header, pillow.dtype, pillow.shape)


@pytest.fixture(scope="module")
def resizer() -> Iterator[Any]:
    """img2dataset's resizer as the download step configures it, with the worker's decoder
    (``pixels.py``: 8-bit copies of deep samples, upright copies of rotated JPEGs)."""
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        patch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations asks PyPI otherwise, on import
        warnings.simplefilter("ignore", DeprecationWarning)  # img2dataset imports imghdr
        module = pytest.importorskip("img2dataset.resizer")
        patch.setattr(module, "cv2", DecoderAsShown(module.cv2))
        yield module.Resizer(image_size=RESIZED, resize_mode="border", resize_only_if_bigger=False)


def _resize(resizer: Any, data: bytes) -> tuple[str | None, int]:
    """img2dataset's resizer's error for ``data``, and the peak of what it allocated: numpy's
    arrays, OpenCV's decoded images among them, go through tracemalloc's hooks."""
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # albumentations' deprecations, printed in a real run
            error = resizer(io.BytesIO(data))[-1]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return error, peak


@pytest.mark.parametrize("maker", sorted(MAKERS))
@settings(max_examples=4, deadline=None)
@given(**sizes)
def test_the_estimate_covers_img2dataset_decoding_at_its_peak(resizer: Any, maker: str, width: int, height: int,
                                                              seed: int) -> None:
    """Everything img2dataset's resizer holds at once, alpha blending in float64 included, is
    within decode_memory (and the resized output, a few KB here)."""
    data = MAKERS[maker](np.random.default_rng(seed), width, height)
    header = read_header(data)
    assert header is not None
    _, peak = _resize(resizer, data)  # decoded, even where resizing then fails (OpenCV has no int32 resize)
    assert peak <= header.decode_memory + len(data) + RESIZER_ALLOWANCE, (maker, header, peak)


def test_a_large_deep_image_costs_what_the_audit_measured(resizer: Any) -> None:
    """A 16-bit RGBA PNG: 80 bytes a pixel in img2dataset alone (8 decoded, 72 blending in float64).
    The worker's decoder brings it to 8 bits first, so the blend runs beside 4 bytes a pixel (76
    measured); the estimate counts the 16-bit image, its 8-bit copy and the blend at once (84)."""
    data = deep_png(700)
    header = read_header(data)
    assert header == ImageHeader("PNG", 700, 700, 4, 16, True)
    error, peak = _resize(resizer, data)
    assert error is None
    assert 0.85 * header.decode_memory <= peak <= header.decode_memory + RESIZER_ALLOWANCE
    assert header.decode_memory == 700 * 700 * 84


# -- JPEG frame headers, parsed here (Pillow refuses 12-bit JPEGs) -----------------------------------
def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


@given(st.sampled_from(sorted(JPEG_FRAME_MARKERS)), st.sampled_from([8, 12, 16]), st.integers(1, 65535),
       st.integers(1, 65535), st.integers(1, 4), st.lists(st.binary(max_size=40), max_size=3), st.integers(0, 3))
def test_jpeg_frame_headers(marker: int, precision: int, width: int, height: int, components: int,
                            app_segments: list[bytes], fill: int) -> None:
    frame = bytes([precision]) + height.to_bytes(2, "big") + width.to_bytes(2, "big") + bytes([components]) \
        + b"\x01\x11\x00" * components
    data = b"\xff\xd8" + b"".join(_segment(0xE0 + i, app) for i, app in enumerate(app_segments)) \
        + b"\xff" * fill + _segment(marker, frame) + _segment(0xDA, b"\x00" * 8)
    header = read_header(data)
    assert header == ImageHeader("JPEG", width, height, components, 8 if precision == 8 else 16, False)
    assert header.decode_memory == width * height * components * (1 if precision == 8 else 3)  # + 8-bit copy


def test_jpeg_without_a_frame_before_its_scan_or_with_a_later_height_has_no_estimate() -> None:
    assert read_header(b"\xff\xd8" + _segment(0xDA, b"\x00" * 8) + _segment(0xC0, b"\x08" + b"\x00" * 8)) is None
    dnl = b"\x08\x00\x00\x00\x10\x03" + b"\x01\x11\x00" * 3  # height 0: a DNL marker after the scan says it
    assert read_header(b"\xff\xd8" + _segment(0xC0, dnl)) is None


@given(st.binary(max_size=200))
def test_any_bytes_give_a_header_or_none(tail: bytes) -> None:
    for data in (tail, b"\xff\xd8" + tail, b"\x89PNG\r\n\x1a\n" + tail):
        header = read_header(data)
        assert header is None or header.decode_memory >= 0


# -- the refusal ----------------------------------------------------------------------------------------
def test_an_image_over_max_decode_bytes_is_refused_before_decoding() -> None:
    data = deep_png(100)  # 100 x 100 x 84 = 840,000 bytes (80 in img2dataset, 4 for the 8-bit copy)
    check_image(data, FetchLimits(max_decode_bytes=840_000))
    check_image(data, FetchLimits(max_decode_bytes=None))
    with pytest.raises(ImageTooLarge) as refused:
        check_image(data, FetchLimits(max_decode_bytes=839_999))
    assert str(refused.value) == (
        f"{DECODE_TOO_LARGE} (839,999 bytes): the image declares 100x100 pixels of 4 x 16-bit samples, "
        "with alpha, which img2dataset blends in float64, about 840,000 bytes to decode")
    with pytest.raises(ImageTooLarge, match="max_image_area"):  # the pixel limit speaks first
        check_image(data, FetchLimits(max_image_area=9999, max_decode_bytes=10))
    rows = pl.DataFrame({"status": ["failed_to_download"], "error_message": [str(refused.value)]})
    assert rows.select(_status())["status"].to_list() == ["image_too_large"]


def test_max_decode_bytes_defaults_to_twenty_bytes_a_pixel_of_max_image_area() -> None:
    assert DownloadParams().limits.max_decode_bytes == 1_000_000_000 == FetchLimits().max_decode_bytes
    assert DownloadParams(max_image_area=1e6).limits.max_decode_bytes == 20_000_000
    assert DownloadParams(max_image_area=None).limits.max_decode_bytes is None
    assert DownloadParams(max_image_area=None, max_decode_bytes=2**30).limits.max_decode_bytes == 2**30
    for wrong in (2**20 - 1, 2**40 + 1, 0):
        with pytest.raises(ValidationError, match="max_decode_bytes"):
            DownloadParams(max_decode_bytes=wrong)


def test_specs_that_leave_it_unset_keep_their_fingerprint_and_image_store_keys() -> None:
    """Their cached downloads and image store records (with image_store) stay valid."""
    assert "max_decode_bytes" not in DownloadParams().fingerprint_dict()
    assert DownloadParams(max_decode_bytes=2**30).fingerprint_dict()["max_decode_bytes"] == 2**30
    url = "http://example.com/a.png"
    unset = DownloadParams().model_dump(mode="json")
    assert record_key(url, unset) == record_key(url, {k: v for k, v in unset.items() if k != "max_decode_bytes"})
    assert record_key(url, {**unset, "max_decode_bytes": 2**30}) != record_key(url, unset)


@pytest.mark.network
def test_deep_pngs_to_many_threads(tmp_path: Any) -> None:
    """16 threads fetch 16-bit RGBA PNGs: those whose decoding fits max_decode_bytes are stored,
    the others refused before decoding, naming the param (the limit reaches img2dataset's processes)."""
    params = {"allow_private_networks": True, "threads": 16, "timeout": 30, "image_size": 32,
              "max_decode_bytes": 32 * 2**20}  # 300 x 300 x 84 = 7.6 MB fits, 1000 x 1000 x 84 does not
    with serve_hostile() as host:
        urls = [f"{host.base_url}/deep/{side}/r{index}" for index in range(8) for side in (300, 1000)]
        table = pl.DataFrame({"url": urls, "alt_text": [f"row {i}" for i in range(len(urls))]})
        _, rows = run_download(tmp_path, table, params)
    small = rows.filter(pl.col("url").str.contains("/deep/300/"))
    large = rows.filter(pl.col("url").str.contains("/deep/1000/"))
    assert small["status"].to_list() == ["success"] * 8 and set(small["original_width"]) == {300}
    assert large["status"].to_list() == ["image_too_large"] * 8
    assert large["error_message"][0] == (
        f"{DECODE_TOO_LARGE} (33,554,432 bytes): the image declares 1000x1000 pixels of 4 x 16-bit samples, "
        "with alpha, which img2dataset blends in float64, about 84,000,000 bytes to decode")


def test_reading_a_header_leaves_pillows_pixel_limit_as_it_was(monkeypatch: Any) -> None:
    """read_header lifts Pillow's decompression-bomb limit to read a huge image's size; it left it
    lifted (a module global), so every later ``Image.open`` in the process went unchecked: a
    20,000 × 20,000 PNG then opened without Pillow's DecompressionBombError (found when another
    test, run after the download tests in the same process, got the other error)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20_000, 20_000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(1 << 16))) + chunk(b"IEND", b""))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000_000)
    header = read_header(bomb)
    assert header is not None and (header.width, header.height) == (20_000, 20_000)
    assert Image.MAX_IMAGE_PIXELS == 50_000_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))
