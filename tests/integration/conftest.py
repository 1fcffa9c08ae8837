"""Fixtures of the integration tier: real stores, loopback fakes, the worker in process."""

from __future__ import annotations

import aiohttp
import pytest

from bot.store.sqlite import SQLiteStore
from tests.fakes.slack_server import FakeSlack
from tests.support.browser import chromium_page
from tests.support.clock import FakeClock
from tests.support.dashboard import start_dashboard


@pytest.fixture
async def sqlite_store(tmp_path):
    store = SQLiteStore(str(tmp_path / "w.db"))
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def slack():
    """The fake Slack Web API, with one known user (U1)."""
    async with FakeSlack() as server:
        server.add_user("U1")
        yield server


@pytest.fixture
async def dashboard(tmp_path):
    """The web dashboard in process on a fresh SQLite store, its clock a FakeClock."""
    started = await start_dashboard(str(tmp_path / "web.db"), FakeClock())
    yield started
    await started.close()


@pytest.fixture
async def page():
    """A Chromium page (tests/support/browser.py); only browser-marked tests ask for one."""
    async with chromium_page() as opened:
        yield opened


@pytest.fixture
async def browser():
    """An HTTP client that keeps cookies (a dashboard session's), on loopback's bare IP too."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session
