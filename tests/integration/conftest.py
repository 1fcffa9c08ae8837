"""Fixtures of the integration tier: real stores, loopback fakes, the worker in process."""

from __future__ import annotations

import aiohttp
import pytest

from bot.store.sqlite import SQLiteStore


@pytest.fixture
async def sqlite_store(tmp_path):
    store = SQLiteStore(str(tmp_path / "w.db"))
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def browser():
    """An HTTP client that keeps cookies like a browser (loopback ones too): the dashboard's
    tests sign in with it and then use the session."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session
