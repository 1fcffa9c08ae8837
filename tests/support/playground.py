"""The dashboard with a real worker behind it, for the playground's tests: a SQLite store, the
service, sign-in, the worker calling the loopback fake Gemini, and the outbox dispatcher with
the web adapter's notifier (as bootstrap wires it), plus /healthz, on a loopback port."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from adapters.web.app import add_dashboard
from adapters.web.delivery import WebDelivery
from bot.catalog import load_catalog
from bot.http import health_route
from bot.notify import OutboxDispatcher
from bot.providers.gemini import GeminiProvider
from bot.service import ImagineService
from bot.sign_in import Role, SignIn
from bot.store.sqlite import SQLiteStore
from bot.worker import Worker
from policies.config import PolicyBook
from tests.support.dashboard import SECRET


@dataclass
class Playground:
    store: SQLiteStore
    service: ImagineService
    sign_in: SignIn
    base: str  # http://127.0.0.1:PORT
    runner: web.AppRunner
    provider: GeminiProvider
    stop: asyncio.Event
    tasks: asyncio.Future

    def link(self, team: str = "T1", user: str = "U1", role: Role = Role.MEMBER) -> str:
        return self.base + urlsplit(self.sign_in.link(team, user, role)).path

    async def close(self) -> None:
        self.stop.set()
        await self.tasks
        await self.runner.cleanup()
        await self.provider.close()
        await self.store.close()


async def start_playground(
    path: str, fake, *, policies: PolicyBook | None = None, run_worker: bool = True
) -> Playground:
    """The playground's server; `run_worker=False` leaves its jobs queued."""
    store = SQLiteStore(path)
    await store.open()
    catalog = load_catalog()
    provider = GeminiProvider.create(api_key="test-key", base_url=fake.url, vertexai=False, timeout_seconds=10)
    dispatcher = OutboxDispatcher(store, [WebDelivery()], poll_interval=0.05)
    worker = Worker(
        store,
        provider,
        catalog,
        concurrency=2,
        lease_seconds=30,
        poll_interval=0.05,
        retry_base=0.01,
        retry_cap=0.05,
        on_delivery=dispatcher.wake,
        policies=policies,
    )
    service = ImagineService(store, catalog, policies=policies, on_submit=worker.wake)
    sign_in = SignIn(store, SECRET, "http://127.0.0.1", session_seconds=3600)
    app = web.Application()
    app.add_routes([health_route(store, 2)])
    add_dashboard(app, service, sign_in)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stop = asyncio.Event()
    tasks = asyncio.gather(*([worker.run(stop)] if run_worker else []), dispatcher.run(stop))
    port = runner.addresses[0][1]
    return Playground(store, service, sign_in, f"http://127.0.0.1:{port}", runner, provider, stop, tasks)
