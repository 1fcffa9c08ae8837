"""The quick PNG check for model output: a plain RGB(A) PNG whose every chunk is whole is
measured without Pillow; anything else is left to Pillow's verdict, unchanged."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from bot import images
from bot.png_chunks import plain_png_size
from bot.types import InvalidRequest
from tests.support.images import png_bytes


def encoded(mode: str, size=(30, 20), **save) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG", **save)
    return buf.getvalue()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def with_chunk_after_header(data: bytes, kind: bytes, body: bytes) -> bytes:
    return data[:33] + chunk(kind, body) + data[33:]


def test_a_plain_rgb_or_rgba_png_is_measured_from_its_header():
    assert plain_png_size(encoded("RGB")) == (30, 20)
    assert plain_png_size(encoded("RGBA", (7, 9))) == (7, 9)
    assert plain_png_size(encoded("RGB", interlace=1)) == (30, 20)


@pytest.mark.parametrize(
    "data",
    [
        encoded("P"),  # other colour types: Pillow's to judge
        encoded("L"),
        encoded("I;16"),
        with_chunk_after_header(encoded("RGB"), b"tEXt", b"Comment\x00hi"),  # a chunk Pillow parses
        encoded("RGB")[:-20],  # cut short: no IEND
        encoded("RGB")[:-1],  # IEND's CRC cut
        b"GIF89a" + b"\x00" * 40,
        b"",
    ],
    ids=["palette", "grey", "16-bit", "text-chunk", "no-end", "cut-crc", "not-png", "empty"],
)
def test_anything_else_is_left_to_pillow(data):
    assert plain_png_size(data) is None


def test_a_chunk_whose_crc_is_wrong_is_left_to_pillow_which_calls_it_damaged():
    data = bytearray(encoded("RGB"))
    idat = data.index(b"IDAT")
    data[idat + 6] ^= 0xFF  # a byte of the compressed pixels; the CRC no longer matches
    assert plain_png_size(bytes(data)) is None
    with pytest.raises(InvalidRequest, match="damaged or incomplete"):
        images.check(bytes(data))


def test_check_measures_a_plain_png_without_opening_it_in_pillow(monkeypatch):
    data = png_bytes(30, 20)
    expected = images.check(data)

    def no_pillow(*args, **kwargs):
        raise AssertionError("Pillow opened a plain PNG")

    monkeypatch.setattr(images.Image, "open", no_pillow)
    assert images.check(data) == expected


def test_a_plain_png_over_the_pixel_limit_is_refused_as_before():
    header = struct.pack(">IIBBBBB", 8000, 8000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    with pytest.raises(InvalidRequest, match="too large"):
        images.check(data)
