"""Fixtures shared by every tier. Helpers a module imports by name live in tests/support/."""

from __future__ import annotations

import psycopg
import pytest

from bot.store.postgres import PostgresStore
from bot.store.sqlite import SQLiteStore
from tests.fakes.gemini_server import FakeGemini
from tests.support.clock import FakeClock
from tests.support.postgres import POSTGRES_URL, drop_schema, unique_schema


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fake():
    """A loopback Gemini with small images; test modules for other services
    (Slack, Discord, a gateway) define their own `fake` instead."""
    async with FakeGemini(image_scale=0.125) as server:
        yield server


# Every Store implementation runs the same contract suite (tests/integration/store).
STORE_KINDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL, or a skip (checked once per session) saying how to start it."""
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(
            f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}; start it with "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start, "
            "or point IMAGINE_TEST_POSTGRES_URL at a server"
        )
    return POSTGRES_URL


@pytest.fixture(params=STORE_KINDS)
async def store_factory(request, tmp_path, clock):
    """Opens stores on one shared database, as separate workers would.

    PostgreSQL stores share a throwaway schema, dropped after the test.
    """
    opened = []
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        schema = unique_schema()

        def make():
            # Small pools: a test opens up to nine stores, and the server's
            # connection limit is shared with whoever else runs tests on it.
            return PostgresStore(url, clock=clock, schema=schema, max_size=4)
    else:

        def make():
            return SQLiteStore(str(tmp_path / "imagine.db"), clock=clock)

    async def factory():
        store = make()
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()
    if request.param == "postgres":
        await drop_schema(url, schema)


@pytest.fixture
async def store(store_factory):
    return await store_factory()
