"""The bot's own HTTP side on a real store: /healthz reports the queue's depth and every job
by state (what end-to-end tests probe instead of sleeping), and serve() on port 0 names
the port it bound."""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from bot.http import health_route, metrics_route, serve
from bot.metrics import Metrics
from bot.types import JobState
from tests.support.jobs import new_job


async def healthz(store) -> dict:
    app = web.Application()
    app.add_routes([health_route(store, workers=2)])
    runner = await serve(app, 0, host="127.0.0.1")
    try:
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as r:
            assert r.status == 200
            return await r.json()
    finally:
        await runner.cleanup()


async def test_healthz_reports_the_queue_depth_and_every_job_by_state(store):
    assert await healthz(store) == {
        "status": "ok",
        "store": True,
        "workers": 2,
        "queued": 0,
        "running": 0,
        "jobs": {},
        "outbox_pending": 0,
    }
    ids = [(await store.submit(new_job(prompt=prompt), [])).job_id for prompt in ("a", "b", "c")]
    assert await store.cancel(ids[2])
    leased = await store.lease("w1", 60)
    assert leased.id == ids[0]
    health = await healthz(store)
    assert (health["queued"], health["running"]) == (1, 1)
    assert health["jobs"] == {"queued": 1, "running": 1, JobState.CANCELLED.value: 1}


async def test_serving_on_port_0_logs_the_port_bound(caplog):
    caplog.set_level(logging.INFO, logger="bot.http")
    runner = await serve(web.Application(), 0, host="127.0.0.1")
    try:
        port = runner.addresses[0][1]
        assert port > 0
        assert f"HTTP on 127.0.0.1:{port} " in caplog.text
    finally:
        await runner.cleanup()


async def test_healthz_reports_the_deliveries_still_pending(store):
    """The outbox's depth: queued deliveries count until they are delivered or given up."""
    assert await store.raise_alert("a1", ["slack", "discord"], "spend is high")
    assert (await healthz(store))["outbox_pending"] == 2
    [first] = await store.claim_deliveries(["slack"], 10, 60)
    assert (await healthz(store))["outbox_pending"] == 2  # claimed but not yet sent: still pending
    await store.mark_delivered(first.id)
    [second] = await store.claim_deliveries(["discord"], 10, 60)
    await store.retry_delivery(second.id, "gone", retry_at=0, max_attempts=1)  # given up
    assert (await healthz(store))["outbox_pending"] == 0


async def scrape(store, token: str | None, headers: dict[str, str]) -> tuple[int, str, dict]:
    app = web.Application()
    app.add_routes([metrics_route(store, Metrics(), token=token)])
    runner = await serve(app, 0, host="127.0.0.1")
    try:
        port = runner.addresses[0][1]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as r,
        ):
            return r.status, await r.text(), dict(r.headers)
    finally:
        await runner.cleanup()


async def test_metrics_take_a_bearer_token_when_one_is_set(store):
    token = "s3cret-scrape-token"
    status, body, headers = await scrape(store, token, {})
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "imagine" not in body  # no figure leaks with the refusal
    for wrong in ("Bearer nope", f"Basic {token}", f"Bearer {token}x", token):
        assert (await scrape(store, token, {"Authorization": wrong}))[0] == 401
    status, body, _ = await scrape(store, token, {"Authorization": f"Bearer {token}"})
    assert status == 200 and "imagine_" in body
    # Without a token configured, /metrics stays open (for a scraper on a private network).
    assert (await scrape(store, None, {}))[0] == 200
