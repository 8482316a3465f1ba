"""What an image will cost once decoded, read from its header before anything decodes it.

img2dataset decodes with ``cv2.imdecode(buffer, IMREAD_UNCHANGED)``, which keeps the file's
channels and bit depth: a 16-bit RGBA PNG becomes 8 bytes a pixel, not 3. Its resizer then
blends a four-channel image onto white in float64 (``alpha / 255 * img[..., :3] + 255 - alpha``,
then ``clip`` and ``rint``), with three 3-channel float64 arrays alive at once while the decoded
image stays alive too: :data:`BLEND_BYTES_PER_PIXEL` more. Measured with tracemalloc around
img2dataset 1.47's resizer (``tests/download/test_decode_memory.py`` checks it on every format
below): 80 bytes a pixel for a 16-bit RGBA PNG, 76 for 8-bit RGBA, grey+alpha or a palette with
transparency, about 3 for RGB; a 7000x7000 16-bit RGBA PNG, within the default pixel limit,
needs 3.9 GB. The worker's decoder (``pixels.py``) adds an 8-bit copy of deep samples and an
upright copy of a JPEG whose EXIF orientation turns it: counted too.
Which of these an image is, its header says:

- **PNG**: IHDR's bit depth and colour type; a tRNS chunk gives RGB and palette images a fourth
  channel in OpenCV (not grey ones).
- **JPEG**: the frame header's (SOF) precision and components, parsed here: Pillow refuses 12-bit
  JPEGs, which OpenCV decodes to 16 bits. Never an alpha channel (OpenCV makes CMYK three).
- **WebP, BMP**: 8-bit, four channels when Pillow sees alpha, and for every 32-bit BMP (OpenCV
  gives a bit-field one four channels even without an alpha mask).
- **GIF**: 8-bit; always counted with alpha, since OpenCV decodes four channels as soon as any
  frame has a graphic control block, which may come after the first.
- **TIFF**: the first directory's SamplesPerPixel and BitsPerSample, parsed here (Pillow's
  parser builds a Python object per strip: 30 MiB of strip offsets took it 8 s); four samples or
  more count as alpha.
- **Other formats Pillow reads** (PPM, JPEG 2000, AVIF...): may hold samples deeper than
  Pillow's mode shows, so 16 bits (32 for Pillow's ``I`` and ``F``), four channels if there may
  be alpha, else three unless single-band.

Each estimate is meant to be at least what OpenCV, or Pillow (``numpy.asarray``), allocates for the
image. A format Pillow cannot identify has no estimate (:func:`read_header` returns None); OpenCV's
own pixel cap still stands before its decoder. Standard library only, plus Pillow lazily.

**Bounded cost.** This runs on every body, after it was read (outside the attempt's deadline),
so what it costs must not grow with what a server sends. Pillow picks its parser by the body's
magic bytes, and some parse in Python a byte or a line at a time: 32 MiB that start like an EPS
file took Pillow's EPS parser 69 s, a PPM header padded with comment lines 17 s. So Pillow only
tries the formats OpenCV's ``imdecode`` (img2dataset's decoder) can decode anyway
(:data:`PILLOW_FORMATS`; any other body is no image to img2dataset, and OpenCV says so at once),
and reads through :class:`_MeteredBytes`, which allows :data:`HEADER_READS` reads; the JPEG
and TIFF parsers here take at most as many steps. A header that takes more is refused
(:class:`HeaderUnreadable`): it would reach the decoder unmeasured.
"""

from __future__ import annotations

import io
import struct
import threading
from dataclasses import dataclass

from curate.jpeg import MarkersPastLimit, jpeg_orientation, segments

# img2dataset's alpha blend: three 3-channel float64 arrays (the product, the sum, then clip's
# and rint's copies) alive at once next to the decoded image.
BLEND_BYTES_PER_PIXEL = 3 * 3 * 8
# Start-of-frame markers: every SOFn, not DHT (C4), JPG (C8) or DAC (CC).
JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Formats Pillow may parse: those OpenCV's imdecode decodes (img2dataset decodes with it). JPEG and
# TIFF are parsed here; OpenEXR, Radiance HDR and PFM Pillow cannot read (OpenCV's pixel cap stands).
PILLOW_FORMATS = ("PNG", "GIF", "WEBP", "BMP", "PPM", "JPEG2000", "SUN", "AVIF")
# Reads of the body Pillow may make, and steps the parsers here may take, to find a header. An
# ordinary image's takes a few dozen (a PNG's chunks before IDAT, a TIFF's directory entries); a
# PPM header padded with comment lines took Pillow one read a byte, 17 s for 32 MiB.
HEADER_READS = 65_536
TIFF_SAMPLES_READ = 4096  # BitsPerSample values looked at (one per sample; a hostile count is 2^32)
# Held while Pillow's pixel limit is lifted (read_header), so that two readers never put back each other's None.
_PILLOW_LIMIT = threading.Lock()


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int
    channels: int  # samples per pixel once decoded: the most OpenCV or Pillow gives
    sample_bits: int  # 8, 16, 32 or 64
    alpha: bool  # OpenCV decodes four channels, which img2dataset's resizer blends in float64
    rotated: bool = False  # a JPEG whose EXIF orientation turns it: pixels.py makes an upright copy

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def decoded_bytes(self) -> int:
        """The decoded image's size."""
        return self.pixels * self.channels * self.sample_bits // 8

    @property
    def decode_memory(self) -> int:
        """Bytes alive at once while img2dataset decodes and blends the image (before resizing),
        with the 8-bit copy of deep samples and the upright copy of a rotated JPEG (``pixels.py``)."""
        copies = (self.sample_bits > 8) + self.rotated
        return self.decoded_bytes + copies * self.pixels * self.channels \
            + (BLEND_BYTES_PER_PIXEL * self.pixels if self.alpha else 0)

    def describe(self) -> str:
        blend = ", with alpha, which img2dataset blends in float64" if self.alpha else ""
        return f"{self.width}x{self.height} pixels of {self.channels} x {self.sample_bits}-bit samples{blend}"


class HeaderUnreadable(ValueError):
    """The body looks like an image, but finding its header takes more than :data:`HEADER_READS`
    reads or steps: a hostile or broken file, refused rather than parsed at any cost."""

    def __init__(self, what: str):
        super().__init__(f"the image's header could not be read within {HEADER_READS:,} reads of the body "
                         f"({what}); an ordinary image's takes a few dozen, so it was not decoded")


class _MeteredBytes(io.BytesIO):
    """The body as Pillow reads it, at most :data:`HEADER_READS` reads (each ``read``,
    ``readline`` or ``readinto`` counts, whatever its size): Pillow's Python parsers spend their
    time per read, and a server chooses how many a header needs."""

    reads = 0

    def _count(self) -> None:
        self.reads += 1
        if self.reads > HEADER_READS:
            raise HeaderUnreadable("Pillow's parser was still looking for it")

    def read(self, size=-1, /):  # type: ignore[no-untyped-def,override]
        self._count()
        return super().read(size)

    def read1(self, size=-1, /):  # type: ignore[no-untyped-def,override]
        self._count()
        return super().read1(size)

    def readline(self, size=-1, /):  # type: ignore[no-untyped-def,override]
        self._count()
        return super().readline(size)

    def readinto(self, buffer, /):  # type: ignore[no-untyped-def,override]
        self._count()
        return super().readinto(buffer)


def read_header(data: bytes) -> ImageHeader | None:
    """What ``data``'s header declares, without decoding it; None if it is no image this can
    read. Raises :class:`HeaderUnreadable` when finding the header would cost more than
    :data:`HEADER_READS` reads or steps."""
    if data[:2] == b"\xff\xd8":  # Pillow's JPEG parser would see nothing this one does not
        return _jpeg(data)
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff(data)
    try:
        from PIL import Image
    except ImportError:
        return None
    # The caller's limits decide: Pillow's own would raise without the size. Its limit is a
    # module global, read by every decode in the process: lifted for this open alone and put back
    # (it was left lifted, so that every later Image.open in the process went unchecked).
    body = _MeteredBytes(data)
    with _PILLOW_LIMIT:
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with Image.open(body, formats=PILLOW_FORMATS) as image:
                return _from_pillow(image, data)
        except Exception:  # noqa: BLE001  not an image Pillow knows: the decoder decides
            if body.reads > HEADER_READS:  # whatever a parser made of the refusal to read on
                raise HeaderUnreadable("Pillow's parser was still looking for it") from None
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def _jpeg(data: bytes) -> ImageHeader | None:
    """The frame header, found by walking the markers before the first scan (at most
    :data:`HEADER_READS` markers and fill bytes: curate.jpeg.segments)."""
    try:
        for marker, at, length in segments(data, HEADER_READS):
            if marker not in JPEG_FRAME_MARKERS:
                continue
            frame = data[at + 4:at + 10]
            if length < 8 or len(frame) < 6:
                return None
            height, width = int.from_bytes(frame[1:3], "big"), int.from_bytes(frame[3:5], "big")
            if not (width and height and frame[5]):  # a height of 0 comes later (DNL): the decoder decides
                return None
            return ImageHeader("JPEG", width, height, frame[5], 8 if frame[0] <= 8 else 16, alpha=False,
                               rotated=jpeg_orientation(data) != 1)
    except MarkersPastLimit:
        raise HeaderUnreadable(f"a JPEG with more than {HEADER_READS:,} markers and fill bytes before its "
                               "frame header") from None
    return None


TIFF_WIDTH, TIFF_HEIGHT, TIFF_BITS, TIFF_PHOTOMETRIC, TIFF_SAMPLES = 256, 257, 258, 262, 277
TIFF_TAGS = (TIFF_WIDTH, TIFF_HEIGHT, TIFF_BITS, TIFF_PHOTOMETRIC, TIFF_SAMPLES)
TIFF_TYPES = {1: "B", 3: "H", 4: "I", 16: "Q"}  # BYTE, SHORT, LONG, LONG8: the integer types of these tags


def _tiff(data: bytes) -> ImageHeader | None:
    """The first directory's size and samples (classic TIFF or BigTIFF); None when it is not
    there, or lacks a size: the decoder decides."""
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    try:
        offset = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
        count = struct.unpack_from(order + ("Q" if big else "H"), data, offset)[0]
        entry_size, count_type = (20, "Q") if big else (12, "I")
        first = offset + (8 if big else 2)
        if count > HEADER_READS:
            raise HeaderUnreadable(f"a TIFF directory of {count:,} entries")
        tags: dict[int, tuple[int, ...]] = {}
        for index in range(count):
            at = first + index * entry_size
            tag, kind = struct.unpack_from(order + "HH", data, at)
            if tag not in TIFF_TAGS or kind not in TIFF_TYPES:
                continue
            values = struct.unpack_from(order + count_type, data, at + 4)[0]
            unit = struct.calcsize(TIFF_TYPES[kind])
            wanted = min(values, TIFF_SAMPLES_READ)
            where = at + 4 + struct.calcsize(count_type)
            if values * unit > (8 if big else 4):  # the values lie elsewhere: at the offset given here
                where = struct.unpack_from(order + ("Q" if big else "I"), data, where)[0]
            if wanted:
                tags[tag] = struct.unpack_from(f"{order}{wanted}{TIFF_TYPES[kind]}", data, where)
    except struct.error:  # cut short: no directory where it says
        return None
    width, height = tags.get(TIFF_WIDTH, (0,))[0], tags.get(TIFF_HEIGHT, (0,))[0]
    if not (width and height):
        return None
    samples = max(tags.get(TIFF_SAMPLES, (1,)))
    channels = max(samples, 3 if tags.get(TIFF_PHOTOMETRIC, (0,))[0] == 3 else 1)  # a palette expands to 3
    bits = _sample_bits(max(tags.get(TIFF_BITS, (1,))))
    return ImageHeader("TIFF", width, height, channels, bits, alpha=samples >= 4)


def _sample_bits(bits: int) -> int:
    """OpenCV's depth for TIFF samples of ``bits`` bits."""
    return 8 if bits <= 8 else 16 if bits <= 16 else 32 if bits <= 32 else 64


def _bmp_bits(data: bytes) -> int | None:
    """Bits per pixel of a BMP with a Windows info header (40 bytes or more), else None."""
    return int.from_bytes(data[28:30], "little") if int.from_bytes(data[14:18], "little") >= 40 else None


def _from_pillow(image, data: bytes) -> ImageHeader:  # type: ignore[no-untyped-def]
    width, height = image.size
    kind = image.format or "unknown"
    bands = image.getbands()
    if kind == "PNG" and data[12:16] == b"IHDR":
        depth, colour = data[24], data[25]
        alpha = colour in (4, 6) or (colour in (2, 3) and "transparency" in image.info)
        channels = 4 if alpha else 1 if colour == 0 else 3
        return ImageHeader(kind, width, height, channels, 16 if depth == 16 else 8, alpha)
    if kind == "GIF":  # OpenCV decodes four channels once a frame has a graphic control block
        return ImageHeader(kind, width, height, 4, 8, alpha=True)
    alpha = "A" in bands or "transparency" in image.info
    if kind == "BMP":  # OpenCV gives a 32-bit bit-field BMP four channels, alpha mask or not (Pillow: RGB)
        alpha = alpha or _bmp_bits(data) == 32
    if kind in ("WEBP", "BMP"):
        return ImageHeader(kind, width, height, 4 if alpha else 3, 8, alpha)
    alpha = alpha or len(bands) >= 4
    channels = 4 if alpha else 1 if len(bands) == 1 and image.mode != "P" else 3
    return ImageHeader(kind, width, height, channels, 32 if image.mode in ("I", "F") else 16, alpha)
