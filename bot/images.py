"""Checking image bytes: is it really an image, which kind, how big.

Anything a user uploads (or a provider returns) passes through `check`
before it is stored or sent on: a Slack login page saved as "image.png"
must fail here with a clear message, not later inside the model call.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

from PIL import Image, UnidentifiedImageError

from bot.types import CheckedImage, InvalidRequest

# What the Gemini image models accept as input.
ACCEPTED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# One attachment at most: inside every route's inline limits once base64 grows it by 4/3
# (a Batch request's ~20 MB; the Developer API allows 100 MB per request since January 2026).
# Vertex AI's 7 MB per image is checked before its calls.
MAX_INPUT_BYTES = 14 * 1024 * 1024
MAX_PIXELS = 50_000_000
DAMAGED = (
    "The attached image is damaged or incomplete (it could not be read to the end). Save it again, or attach another."
)


def check(data: bytes, *, max_bytes: int = MAX_INPUT_BYTES) -> CheckedImage:
    if not data:
        raise InvalidRequest("The attached file is empty.")
    if len(data) > max_bytes:
        raise InvalidRequest(
            f"The attached image is {len(data) / 1_048_576:.1f} MB; the limit is {max_bytes / 1_048_576:.0f} MB."
        )
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format, img.size
            if width * height > MAX_PIXELS:
                raise InvalidRequest(f"The attached image is too large ({width}x{height} pixels).")
            try:
                img.verify()  # catches files cut short or corrupt that open() accepts
            except (OSError, SyntaxError, ValueError):
                raise InvalidRequest(DAMAGED) from None
    except InvalidRequest:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InvalidRequest("The attached file is not an image I can read (PNG, JPEG or WebP).") from None
    mime = ACCEPTED_FORMATS.get(fmt or "")
    if mime is None:
        raise InvalidRequest(f"{fmt} images are not supported; use PNG, JPEG or WebP.")
    return CheckedImage(data=data, mime=mime, width=width, height=height, sha256=hashlib.sha256(data).hexdigest())


def check_input(data: bytes, *, max_bytes: int = MAX_INPUT_BYTES) -> CheckedImage:
    """`check`, then every pixel decoded: a user's image goes to the model only when it is
    whole. A header alone passes `check` (open() reads the header, verify() no pixels), so a
    33-byte file claiming 7000x7000 would otherwise be sent and billed. The pixel limit is
    checked first, so decoding is bounded; callers run this off the event loop."""
    checked = check(data, max_bytes=max_bytes)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
        whole = checked.mime != "image/png" or _png_rows_complete(data)
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error, Image.DecompressionBombError):
        whole = False
    if not whole:
        raise InvalidRequest(DAMAGED)
    return checked


# Channels per PNG colour type (grey, RGB, palette, grey+alpha, RGBA).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7's seven passes: (x start, y start, x step, y step).
_ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def _png_rows_complete(data: bytes) -> bool:
    """Whether a PNG's compressed pixels inflate to every row its header promises.

    Pillow's decoder stops quietly when the zlib stream ends early and leaves the missing
    rows black, so a small file claiming 7000x7000 loads without error. This counts the
    inflated bytes (in pieces: never more than a chunk in memory) against the header."""
    width, height, depth, colour, _, _, interlaced = struct.unpack(">IIBBBBB", data[16:29])
    bits = depth * _PNG_CHANNELS[colour]

    def row_bytes(pixels: int) -> int:
        return 0 if pixels == 0 else 1 + (pixels * bits + 7) // 8  # a filter byte, then the pixels

    if interlaced:
        expected = 0
        for x0, y0, dx, dy in _ADAM7:
            cols, rows = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
            expected += rows * row_bytes(cols) if cols > 0 else 0
    else:
        expected = height * row_bytes(width)
    inflate, inflated, at = zlib.decompressobj(), 0, 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == b"IDAT":
            piece = data[at + 8 : at + 8 + length]
            while piece and inflated <= expected:
                inflated += len(inflate.decompress(piece, 1 << 20))
                piece = inflate.unconsumed_tail
        at += 12 + length
    return inflated == expected


def fit(image: CheckedImage, max_bytes: int) -> tuple[CheckedImage, str | None]:
    """The image, re-encoded to fit an upload limit if it must be, and a note saying so.

    JPEG at falling quality first (keeps every pixel), then smaller sizes.
    """
    if len(image.data) <= max_bytes:
        return image, None
    # One decoded copy of the pixels: an RGB image (what the models send) is encoded as it is,
    # not converted into a second one. Callers run this off the event loop.
    with Image.open(io.BytesIO(image.data)) as original:
        rgb = original if original.mode == "RGB" else original.convert("RGB")
        return _smallest_fit(image, rgb, max_bytes)


def _smallest_fit(image: CheckedImage, rgb: Image.Image, max_bytes: int) -> tuple[CheckedImage, str]:
    scale = 1.0
    while scale > 0.1:
        frame = rgb if scale == 1.0 else rgb.resize((max(1, int(rgb.width * scale)), max(1, int(rgb.height * scale))))
        for quality in (92, 85, 75):
            buf = io.BytesIO()
            frame.save(buf, "JPEG", quality=quality, optimize=True)
            if buf.tell() <= max_bytes:
                data = buf.getvalue()
                size = "" if scale == 1.0 else f", scaled to {frame.width}x{frame.height}"
                note = (
                    f"The original ({len(image.data) / 1_048_576:.1f} MB PNG) is over this channel's "
                    f"{max_bytes / 1_048_576:.0f} MB upload limit, so this is a JPEG (quality {quality}{size})."
                )
                return CheckedImage(
                    data, "image/jpeg", frame.width, frame.height, hashlib.sha256(data).hexdigest()
                ), note
        del frame  # the next, smaller frame is made from `rgb`, not beside this one
        scale *= 0.75
    raise ValueError(f"cannot fit the image into {max_bytes} bytes")
