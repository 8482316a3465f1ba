"""The header check before decoding costs a bounded amount whatever a server sends: it runs on
every body after the attempt's deadline, holding a process-wide lock. Pillow's EPS parser spent
69 s of CPU on 32 MiB that began like an EPS file, its PPM parser 17 s on a header padded with
comment lines; ordinary images, their metadata included, still have their header read."""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from curate_download.fetch import FetchLimits, check_image
from curate_download.header import HEADER_READS, HeaderUnreadable, ImageHeader, read_header
from PIL import Image

cv2 = pytest.importorskip("cv2")

BODY = 32 * 2**20 - 1024  # just under the default max_bytes
CPU_SECONDS = 3.0  # generous on a loaded machine: each takes a tenth of that; the EPS took 28 s here


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _tiff_with_strips(strips: int) -> bytes:
    """A grey TIFF of one row per strip: Pillow's parser made a Python object for each."""
    data_at = 8 + 2 + 8 * 12 + 4

    def entry(tag: int, kind: int, count: int, value: bytes) -> bytes:
        return struct.pack("<HHI", tag, kind, count) + value

    entries = [entry(256, 4, 1, struct.pack("<I", 1000)), entry(257, 4, 1, struct.pack("<I", strips)),
               entry(258, 3, 1, b"\x08\0\0\0"), entry(259, 3, 1, b"\x01\0\0\0"),
               entry(262, 3, 1, b"\x01\0\0\0"), entry(273, 4, strips, struct.pack("<I", data_at)),
               entry(278, 4, 1, struct.pack("<I", 1)),
               entry(279, 4, strips, struct.pack("<I", data_at + 4 * strips))]
    return (b"II*\x00" + struct.pack("<IH", 8, len(entries)) + b"".join(entries) + bytes(4)
            + bytes(4 * strips) + struct.pack("<I", 1000) * strips)


IHDR = struct.pack(">IIBBBBB", 10, 10, 8, 2, 0, 0, 0)  # 10 x 10 RGB
HOSTILE: dict[str, tuple[Callable[[], bytes], object]] = {  # body, and what read_header makes of it
    "eps": (lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n" + b"%a\n" * (BODY // 3), None),  # OpenCV decodes no EPS
    "ppm comments": (lambda: b"P6\n" + b"#\n" * (BODY // 2) + b"10 10\n255\n", HeaderUnreadable),
    "jpeg fill bytes": (lambda: b"\xff\xd8" + b"\xff" * BODY, HeaderUnreadable),
    "png empty chunks": (lambda: b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", IHDR)
                         + _chunk(b"abCd", b"") * (BODY // 12), HeaderUnreadable),
    "gif comment": (lambda: b"GIF89a\x0a\x00\x0a\x00\x00\x00\x00\x21\xfe" + b"\x01a" * (BODY // 2) + b"\x00",
                    HeaderUnreadable),
    "tiff strips": (lambda: _tiff_with_strips(4_000_000), ImageHeader("TIFF", 1000, 4_000_000, 1, 8, False)),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_body_costs_a_bounded_time(name: str) -> None:
    make, expected = HOSTILE[name]
    body = make()
    started = time.process_time()
    if expected is HeaderUnreadable:
        with pytest.raises(HeaderUnreadable, match=f"within {HEADER_READS:,} reads"):
            read_header(body)
    else:
        assert read_header(body) == expected
    assert time.process_time() - started < CPU_SECONDS


def test_a_header_past_the_bound_is_refused_before_decoding_saying_why() -> None:
    body = b"P6\n" + b"#\n" * HEADER_READS + b"10 10\n255\n" + bytes(300)
    with pytest.raises(HeaderUnreadable) as refused:
        check_image(body, FetchLimits())
    assert str(refused.value).startswith("the image's header could not be read within 65,536 reads of the "
                                         "body")
    assert "not decoded" in str(refused.value)
    check_image(body, FetchLimits(max_image_area=None, max_decode_bytes=None))  # no limits: nothing to check


def _jpeg_with_metadata() -> bytes:
    """A photo as cameras and editors write it: a 64 KiB EXIF segment, a 1 MiB ICC profile in
    16 APP2 segments and an XMP packet, all before the frame header."""
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 20, 30)).save(buffer, "JPEG", exif=b"Exif\0\0" + bytes(65_000),
                                                    icc_profile=bytes(2**20), xmp=b"<x:xmpmeta/>" * 4000)
    return buffer.getvalue()


def _png_with_metadata() -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for index in range(200):
        info.add_text(f"key{index}", "v" * 2000)
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200)).save(buffer, "PNG", pnginfo=info, icc_profile=bytes(2**20),
                                      transparency=(0, 0, 0))
    return buffer.getvalue()


def _by_opencv(extension: str, shape: tuple[int, ...]) -> bytes:
    ok, buffer = cv2.imencode(extension, np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8))
    assert ok
    return buffer.tobytes()


def _by_pillow(form: str, size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)) \
        .convert(mode).save(buffer, form)
    return buffer.getvalue()


LEGITIMATE = {
    "jpeg with exif, icc and xmp": (_jpeg_with_metadata, ImageHeader("JPEG", 640, 480, 3, 8, False)),
    "png with text, icc and trns": (_png_with_metadata, ImageHeader("PNG", 300, 200, 4, 8, True)),
    # libtiff writes the directory after the pixels, here 6 MB into the file
    "tiff by libtiff": (lambda: _by_opencv(".tiff", (1000, 2000, 3)),
                        ImageHeader("TIFF", 2000, 1000, 3, 8, False)),
    "webp": (lambda: _by_opencv(".webp", (1200, 1600, 4)), ImageHeader("WEBP", 1600, 1200, 4, 8, True)),
    "gif": (lambda: _by_pillow("GIF", (1500, 1000), "P"), ImageHeader("GIF", 1500, 1000, 4, 8, True)),
    "bmp": (lambda: _by_opencv(".bmp", (1000, 1500, 3)), ImageHeader("BMP", 1500, 1000, 3, 8, False)),
    "ppm": (lambda: _by_opencv(".ppm", (1000, 1500, 3)), ImageHeader("PPM", 1500, 1000, 3, 16, False)),
}


@pytest.mark.parametrize("name", sorted(LEGITIMATE))
def test_ordinary_images_still_have_their_header_read(name: str) -> None:
    make, expected = LEGITIMATE[name]
    data = make()
    assert read_header(data) == expected
    check_image(data, FetchLimits())
    if name == "tiff by libtiff":
        assert struct.unpack_from("<I", data, 4)[0] > len(data) // 2  # the directory comes last
