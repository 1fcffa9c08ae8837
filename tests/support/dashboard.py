"""The web dashboard in process for tests: a real SQLite store, the service, sign-in and the
aiohttp app with the dashboard's routes, on a loopback port."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from adapters.web.app import add_dashboard
from bot.catalog import load_catalog
from bot.service import ImagineService
from bot.sign_in import Role, SignIn
from bot.store.sqlite import SQLiteStore
from policies.config import PolicyBook
from tests.support.clock import FakeClock

SECRET = "test-secret-" + "x" * 32


@dataclass
class Dashboard:
    store: SQLiteStore
    clock: FakeClock
    sign_in: SignIn
    base: str  # http://127.0.0.1:PORT
    runner: web.AppRunner
    path: str = ""  # the SQLite file, for a CLI run over the same database

    def link(self, team: str = "T1", user: str = "U1", role: Role = Role.MEMBER) -> str:
        """A fresh sign-in link, on this server."""
        made = urlsplit(self.sign_in.link(team, user, role))
        return self.base + made.path

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.store.close()


async def start_dashboard(
    path: str, clock: FakeClock, *, public_url: str = "http://127.0.0.1", policies: PolicyBook | None = None
) -> Dashboard:
    store = SQLiteStore(path, clock=clock)
    await store.open()
    service = ImagineService(store, load_catalog(), clock=clock, policies=policies)
    sign_in = SignIn(store, SECRET, public_url, session_seconds=3600, clock=clock)
    app = web.Application()
    add_dashboard(app, service, sign_in, clock=clock)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return Dashboard(store, clock, sign_in, f"http://127.0.0.1:{port}", runner, path)


async def who_signs_in(base: str, link: str) -> str:
    """Open a sign-in link's path on the server at `base` (a link's public URL may be made up) in
    a fresh browser: who the landing overview says is signed in, "user · team · role"."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(base + urlsplit(link).path) as r:
            page = await r.text()
            assert r.status == 200 and r.url.path == "/dashboard/", page
    who = re.search(r'<span class="who">([^<]+)</span>', page)
    assert who, page
    return who[1]
