"""What the loopback fakes share: serving an aiohttp app on 127.0.0.1, and small helpers.

A fake subclasses ``LoopbackServer``, builds its app in ``_app()`` and names its URLs in
``_set_urls(root)``; it then has ``start(port=0)`` (port 0: any free port), ``stop()`` and
``async with``; ``serve_forever(port)`` runs it standalone.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NoReturn, Self

from aiohttp import web

from tests.support.probe import eventually


class LoopbackServer:
    # Keyword arguments for web.AppRunner besides access_log=None. A short shutdown_timeout
    # keeps stop() from waiting out aiohttp's default grace on a handler that is still busy.
    _runner_options: dict[str, Any] = {"shutdown_timeout": 0.1}
    _runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        raise NotImplementedError

    def _set_urls(self, root: str) -> None:
        """Set the fake's URL attributes from the bound root, "http://127.0.0.1:PORT"."""
        self.url = root

    async def _before_cleanup(self) -> None:
        """Runs at every stop(), before the runner is cleaned up."""

    def _banner(self) -> str:
        """What serve_forever() prints once started."""
        return self.url

    # The service a wait_for() failure names, and the call log it shows (fakes that record calls).
    label = "fake"

    def summary(self) -> str:
        return ""

    async def wait_for(self, predicate, timeout: float = 10.0) -> None:
        """Poll until predicate() (sync or async) is true; else fail showing the calls so far."""
        try:
            await eventually(predicate, timeout, interval=0.01)
        except AssertionError:
            raise AssertionError(
                f"condition not met after {timeout}s; {self.label} calls so far:\n" + self.summary()
            ) from None

    async def start(self, port: int = 0) -> Self:
        self._runner = web.AppRunner(self._app(), access_log=None, **self._runner_options)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self._set_urls(f"http://127.0.0.1:{self._runner.addresses[0][1]}")
        return self

    async def stop(self) -> None:
        await self._before_cleanup()
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def serve_forever(self, port: int) -> None:
        """Start on port, print the banner, and serve until cancelled (Ctrl-C)."""
        await self.start(port)
        print(self._banner(), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()


def json_not_found(respond: Callable[[web.Request], web.Response]):
    """Middleware that answers an unknown route or method with ``respond(request)`` (the
    service's JSON 404) instead of aiohttp's plain-text one."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        try:
            return await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            return respond(request)

    return middleware


def hang_up(request: web.Request) -> NoReturn:
    """Close the connection without an answer, after the request was read: the client sees
    the server disconnect, though the service may have done (and billed) the work."""
    if request.transport is not None:
        request.transport.close()
    raise asyncio.CancelledError


@lru_cache(maxsize=128)
def png_b64(w: int, h: int, colour: tuple[int, int, int]) -> str:
    """A solid-colour w x h PNG, base64 encoded (standard alphabet)."""
    from PIL import Image  # deferred: importing the module stays cheap

    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, "PNG", compress_level=1)
    return base64.b64encode(buf.getvalue()).decode("ascii")
