"""A quick structural check of the PNGs the models send, without Pillow.

Opening an image in Pillow and verifying it costs a worker more than its database
work for a small image. What Pillow's `verify` establishes for a PNG is structural:
the signature, a readable header, and every chunk whole (its CRC right) up to IEND;
it decodes no pixels. `plain_png_size` checks exactly that, but only for the PNGs a
model sends (8-bit RGB or RGBA, with no chunk Pillow would parse on opening beyond
the header, palette-free); for anything else it answers None and Pillow decides, so
nothing it accepts is one Pillow would refuse. User uploads are still decoded whole
(`images.check_input`).
"""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# 8-bit truecolour (2) and truecolour with alpha (6): what the image models return.
_PLAIN_COLOUR_TYPES = (2, 6)
# Chunks Pillow reads on opening without rules of their own beyond storing a value, or that
# it skips; any other chunk sends the image to Pillow.
_PLAIN_CHUNKS = frozenset({b"IHDR", b"IDAT", b"IEND", b"sRGB", b"gAMA", b"pHYs", b"cHRM"})
_LENGTH_AND_KIND = struct.Struct(">I4s")
_CRC = struct.Struct(">I")
_MAX_CHUNK = 2**31 - 1


def plain_png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a plain, structurally whole PNG; None when Pillow must judge."""
    if not data.startswith(SIGNATURE) or len(data) < 8 + 25:
        return None
    view = memoryview(data)
    at, seen_data, size = 8, False, None
    while at + 12 <= len(data):
        length, kind = _LENGTH_AND_KIND.unpack_from(data, at)
        end = at + 8 + length
        if length > _MAX_CHUNK or end + 4 > len(data) or kind not in _PLAIN_CHUNKS:
            return None
        # CRC over the kind and the body: as Pillow's verify checks each chunk.
        if zlib.crc32(view[at + 8 : end], zlib.crc32(kind)) != _CRC.unpack_from(data, end)[0]:
            return None
        if at == 8:
            size = _header_size(data[at + 8 : end]) if kind == b"IHDR" else None
            if size is None:
                return None
        elif kind == b"IHDR":
            return None
        elif kind == b"IDAT":
            seen_data = True
        elif kind == b"IEND":
            return size if seen_data and length == 0 else None
        at = end + 4
    return None  # no IEND: cut short


def _header_size(header: bytes) -> tuple[int, int] | None:
    if len(header) != 13:
        return None
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", header)
    plain = depth == 8 and colour in _PLAIN_COLOUR_TYPES and compression == filtering == 0 and interlace in (0, 1)
    return (width, height) if plain and 0 < width < 2**31 and 0 < height < 2**31 else None
