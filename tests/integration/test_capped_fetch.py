"""fetch_capped against a file host that streams without a Content-Length, or states a
larger one: the cap holds either way, and a file within it arrives whole."""

from __future__ import annotations

import pytest
from aiohttp import web

from adapters.downloads import fetch_capped
from bot.types import InvalidRequest
from tests.fakes.loopback import LoopbackServer

BODY = bytes(range(256)) * 1024  # 256 KiB


class FileHost(LoopbackServer):
    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/streamed", self._streamed)
        app.router.add_get("/whole", self._whole)
        return app

    async def _streamed(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()  # no Content-Length: only the bytes tell the size
        await response.prepare(request)
        for start in range(0, len(BODY), 4096):
            await response.write(BODY[start : start + 4096])
        await response.write_eof()
        return response

    async def _whole(self, request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="image/png")


@pytest.fixture
async def host():
    async with FileHost() as server:
        yield server


async def test_a_stream_without_a_length_stops_at_the_cap(host):
    with pytest.raises(InvalidRequest, match="streamed.png is larger than"):
        await fetch_capped(f"{host.url}/streamed", "streamed.png", cap=100_000)
    fetched = await fetch_capped(f"{host.url}/streamed", "streamed.png", cap=len(BODY))
    assert fetched.status == 200 and fetched.data == BODY


async def test_a_stated_length_over_the_cap_is_refused_and_one_within_it_read(host):
    with pytest.raises(InvalidRequest, match="whole.png is larger than"):
        await fetch_capped(f"{host.url}/whole", "whole.png", cap=100_000)
    fetched = await fetch_capped(f"{host.url}/whole", "whole.png")
    assert fetched.data == BODY and fetched.content_type == "image/png"
