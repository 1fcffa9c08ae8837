"""Small images to send, big ones that do not compress, and reading back the size of one received."""

from __future__ import annotations

import io
import os

from PIL import Image


def png_bytes(width: int = 8, height: int = 8, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.size


def noise_png(size: int) -> bytes:
    """A PNG of about `size` bytes that does not compress: what a big photo costs inline."""
    side = int((size / 3) ** 0.5)
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, "PNG", compress_level=0)
    return buf.getvalue()
