from __future__ import annotations

import io
import os
import struct
import zlib

import pytest
from PIL import Image

from bot import images
from bot.types import InvalidRequest
from tests.support.images import png_bytes


def noisy_png(width: int, height: int) -> bytes:
    # Random pixels do not compress: a PNG as large as a real photo-like render.
    buf = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buf, "PNG")
    return buf.getvalue()


def test_check_accepts_images_and_refuses_everything_else():
    checked = images.check(png_bytes(30, 20))
    assert (checked.mime, checked.width, checked.height) == ("image/png", 30, 20)
    for bad in (b"", b"<html>sign in</html>", png_bytes()[:40]):
        with pytest.raises(InvalidRequest):
            images.check(bad)
    with pytest.raises(InvalidRequest, match="limit is"):
        images.check(png_bytes(), max_bytes=10)


def test_fit_leaves_small_images_alone_and_re_encodes_large_ones_under_the_limit():
    small = images.check(png_bytes(50, 50))
    assert images.fit(small, 10_000_000) == (small, None)
    big = images.check(noisy_png(600, 400), max_bytes=10**8)
    limit = len(big.data) // 4
    fitted, note = images.fit(big, limit)
    assert len(fitted.data) <= limit and fitted.mime == "image/jpeg"
    assert "upload limit" in note and "JPEG" in note
    with Image.open(io.BytesIO(fitted.data)) as img:
        assert img.format == "JPEG" and abs(img.width / img.height - 1.5) < 0.02


def lying_png(width: int, height: int) -> bytes:
    """A well-formed PNG (signature, IHDR, IDAT, IEND, every CRC right) claiming width x height
    but holding the pixels of one row: verify() checks the chunks, not the pixels, so it passes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    one_row = zlib.compress(b"\x00" + b"\x00" * 3 * width)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", one_row) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "data",
    [
        lying_png(7000, 7000),  # a small file claiming 49 million pixels
        png_bytes(64, 64)[:-40],  # a real image cut short
        noisy_png(64, 64)[: len(noisy_png(64, 64)) // 2],
    ],
    ids=["pixels-missing", "no-end", "half"],
)
def test_an_input_is_decoded_whole_so_truncated_images_are_refused(data):
    with pytest.raises(InvalidRequest, match="damaged or incomplete"):
        images.check_input(data)


def test_an_input_that_decodes_is_accepted_as_check_would():
    data = png_bytes(30, 20)
    assert images.check_input(data) == images.check(data)
