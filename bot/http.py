"""The HTTP side of `python -m bot run`: health now, adapters' routes added by bootstrap."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.metrics import Metrics
from bot.store.ports import Store, StoreUnavailable

log = logging.getLogger(__name__)


def health_route(store: Store, workers: int) -> web.RouteDef:
    async def healthz(_: web.Request) -> web.Response:
        try:
            counts = await store.counts_by_state()
        except StoreUnavailable:
            log.exception("healthz: store unavailable")
            return web.json_response({"status": "unavailable", "store": False}, status=503)
        return web.json_response({"status": "ok", "store": True, "workers": workers,
                                  "queued": counts.get("queued", 0), "running": counts.get("running", 0)})
    return web.get("/healthz", healthz)


def metrics_route(store: Store, metrics: Metrics) -> web.RouteDef:
    async def scrape(_: web.Request) -> web.Response:
        try:
            counts = await store.counts_by_state()
        except StoreUnavailable:
            counts = {}  # the process's own counters still help while the store is down
        return web.Response(body=metrics.render(counts), headers={"Content-Type": metrics.content_type})
    return web.get("/metrics", scrape)


async def serve(app: web.Application, port: int, host: str = "0.0.0.0") -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("HTTP on %s:%d (%s)", host, port, ", ".join(sorted({r.resource.canonical for r in app.router.routes()})))
    return runner
