"""The HTTP side of `python -m bot run`: health now, adapters' routes added by bootstrap."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from bot.metrics import Metrics
from bot.store.ports import Store, StoreUnavailable

log = logging.getLogger(__name__)


def health_route(store: Store, workers: int) -> web.RouteDef:
    async def healthz(_: web.Request) -> web.Response:
        try:
            # A write, not only reads: a locked or unwritable SQLite file still reads.
            await store.check_writable()
            counts = await store.counts_by_state()
            pending = await store.pending_deliveries()
        except StoreUnavailable as exc:
            log.warning("healthz: store unavailable: %s", exc)  # expected while it restarts: no traceback
            return web.json_response({"status": "unavailable", "store": False}, status=503)
        # The queue's depth, every job by state and the outbox's depth: a test (or an operator)
        # probes "nothing queued, nothing left to post" here instead of sleeping and hoping.
        return web.json_response(
            {
                "status": "ok",
                "store": True,
                "workers": workers,
                "queued": counts.get("queued", 0),
                "running": counts.get("running", 0),
                "jobs": counts,
                "outbox_pending": pending,
            }
        )

    return web.get("/healthz", healthz)


def metrics_route(store: Store, metrics: Metrics, *, token: str | None = None) -> web.RouteDef:
    """/metrics for Prometheus. With a `token` (IMAGINE_METRICS_TOKEN) a scrape must send it as
    `Authorization: Bearer <token>`: the figures include spend by team, and the port also
    serves Slack's public endpoint."""
    expected = f"Bearer {token}".encode() if token else None

    async def scrape(request: web.Request) -> web.Response:
        sent = request.headers.get("Authorization", "").encode()
        if expected is not None and not hmac.compare_digest(sent, expected):
            return web.Response(
                status=401, text="a bearer token is required\n", headers={"WWW-Authenticate": 'Bearer realm="metrics"'}
            )
        try:
            counts = await store.counts_by_state()
        except StoreUnavailable:
            counts = {}  # the process's own counters still help while the store is down
        return web.Response(body=metrics.render(counts), headers={"Content-Type": metrics.content_type})

    return web.get("/metrics", scrape)


async def serve(app: web.Application, port: int, host: str = "0.0.0.0") -> web.AppRunner:
    """Serve app on host:port. Port 0 takes any free port; the log line names the port bound,
    so whoever started the process (the end-to-end tests) reads it there, with no race."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound = runner.addresses[0][1]
    log.info(
        "HTTP on %s:%d (%s)",
        host,
        bound,
        ", ".join(sorted({r.resource.canonical for r in app.router.routes() if r.resource is not None})),
    )
    return runner
