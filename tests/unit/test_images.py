from __future__ import annotations

import io
import os

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
