"""Recognising the photos a bot uploads: PNG or JPEG, and their size from the header.

Telegram re-encodes photos and refuses what it cannot decode ("IMAGE_PROCESS_FAILED") or what
has a shape it will not show ("PHOTO_INVALID_DIMENSIONS"). Reading the header is enough to give
the same answers and to fill PhotoSize's width and height without an imaging library.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from telegram_sim.errors import bad_request

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) do not.
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
MAX_DIMENSIONS_SUM = 10_000
MAX_ASPECT_RATIO = 20


@dataclass(frozen=True, slots=True)
class ImageInfo:
    content_type: str
    width: int
    height: int


def _png(data: bytes) -> ImageInfo | None:
    if len(data) < 33 or data[12:16] != b"IHDR" or b"IEND" not in data[-12:]:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return ImageInfo("image/png", width, height)


def _jpeg(data: bytes) -> ImageInfo | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in {0x01, *range(0xD0, 0xD8)}:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in JPEG_SOF:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return ImageInfo("image/jpeg", width, height)
        if marker == 0xDA or length < 2:  # scan data before any frame header: corrupt
            return None
        pos += 2 + length
    return None


def identify(data: bytes) -> ImageInfo | None:
    """The image's type and size, or None when it is not a PNG or JPEG this can read."""
    if data.startswith(PNG_SIGNATURE):
        return _png(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    return None


def checked_photo(data: bytes) -> ImageInfo:
    """The photo's header, or the 400 Telegram answers for a photo it will not accept."""
    info = identify(data)
    if info is None or info.width <= 0 or info.height <= 0:
        raise bad_request("IMAGE_PROCESS_FAILED")
    long_side, short_side = max(info.width, info.height), min(info.width, info.height)
    if info.width + info.height > MAX_DIMENSIONS_SUM or long_side > short_side * MAX_ASPECT_RATIO:
        raise bad_request("PHOTO_INVALID_DIMENSIONS")
    return info
