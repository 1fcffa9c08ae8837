"""Checking image bytes: is it really an image, which kind, how big.

Anything a user uploads (or a provider returns) passes through `check`
before it is stored or sent on: a Slack login page saved as "image.png"
must fail here with a clear message, not later inside the model call.
"""

from __future__ import annotations

import hashlib
import io

from PIL import Image, UnidentifiedImageError

from bot.types import CheckedImage, InvalidRequest

# What the Gemini image models accept as input.
ACCEPTED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# One attachment at most: inside every route's inline limits once base64 grows it by 4/3
# (a Batch request's ~20 MB; the Developer API allows 100 MB per request since January 2026).
# Vertex AI's 7 MB per image is checked before its calls.
MAX_INPUT_BYTES = 14 * 1024 * 1024
MAX_PIXELS = 50_000_000


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
            img.verify()  # catches truncated or corrupt files that open() accepts
    except InvalidRequest:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InvalidRequest("The attached file is not an image I can read (PNG, JPEG or WebP).") from None
    mime = ACCEPTED_FORMATS.get(fmt or "")
    if mime is None:
        raise InvalidRequest(f"{fmt} images are not supported; use PNG, JPEG or WebP.")
    return CheckedImage(data=data, mime=mime, width=width, height=height, sha256=hashlib.sha256(data).hexdigest())


def fit(image: CheckedImage, max_bytes: int) -> tuple[CheckedImage, str | None]:
    """The image, re-encoded to fit an upload limit if it must be, and a note saying so.

    JPEG at falling quality first (keeps every pixel), then smaller sizes.
    """
    if len(image.data) <= max_bytes:
        return image, None
    with Image.open(io.BytesIO(image.data)) as original:
        rgb = original.convert("RGB")
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
        scale *= 0.75
    raise ValueError(f"cannot fit the image into {max_bytes} bytes")
