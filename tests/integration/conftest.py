"""Fixtures of the integration tier: real stores, loopback fakes, the worker in process."""

from __future__ import annotations

import pytest

from bot.store.sqlite import SQLiteStore


@pytest.fixture
async def sqlite_store(tmp_path):
    store = SQLiteStore(str(tmp_path / "w.db"))
    await store.open()
    yield store
    await store.close()
