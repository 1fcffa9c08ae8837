"""Reading a user's file from a platform's file host, never more than the cap.

Both adapters download through `fetch_capped`: the declared size and Content-Length are
the sender's word, so a larger one is refused at once and the body is read in chunks that
stop at the cap, whatever either said. Callers hold a download slot of the core
(`ImagineService.download_slot`) around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from bot.attachments import MAX_DOWNLOAD_BYTES, TOO_LARGE
from bot.types import InvalidRequest

CHUNK = 1 << 16
TIMEOUT = aiohttp.ClientTimeout(total=60)


@dataclass(frozen=True)
class Fetched:
    status: int
    content_type: str
    data: bytes


async def fetch_capped(
    url: str, name: str, *, headers: dict[str, str] | None = None, cap: int = MAX_DOWNLOAD_BYTES
) -> Fetched:
    """The file at `url`, at most `cap` bytes (InvalidRequest past it). No redirects: a
    token sent along must not follow one elsewhere."""
    too_large = InvalidRequest(TOO_LARGE.format(name=name, mb=cap // 1_048_576))
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.get(url, headers=headers or {}, allow_redirects=False) as response:
            if (response.content_length or 0) > cap:
                raise too_large
            data = bytearray()
            async for chunk in response.content.iter_chunked(CHUNK):
                data += chunk
                if len(data) > cap:
                    raise too_large
            return Fetched(response.status, response.headers.get("Content-Type", ""), bytes(data))
