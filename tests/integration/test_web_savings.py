"""The overview's savings over HTTP: this month's cache savings and Flex/Batch savings, from
known ledger rows, exact in micros and labelled on the page."""

from __future__ import annotations

import re

import aiohttp
import pytest

from bot.types import Lane
from tests.integration.store.test_store_savings import hit
from tests.support.clock import FakeClock
from tests.support.dashboard import start_dashboard
from tests.support.store_contract import settle

MONTH_START = 1_796_083_200.0  # 2026-12-01 00:00 UTC


@pytest.fixture
async def dashboard(tmp_path):
    started = await start_dashboard(str(tmp_path / "web.db"), FakeClock(MONTH_START - 3600))
    yield started
    await started.close()


def saving(page: str, kind: str) -> tuple[int, str]:
    """The figure's micros and the amount shown, of one labelled saving."""
    found = re.search(rf'data-saving="{kind}" data-micros="(\d+)">\s*<dt>[^<]+</dt>\s*<dd>([^<]+)</dd>', page)
    assert found, page
    return int(found.group(1)), found.group(2)


async def test_the_overview_shows_this_months_cache_and_relaxed_lane_savings(dashboard):
    store, clock = dashboard.store, dashboard.clock
    # Last month: an image, a cache hit of it and a Flex render; none of it counts this month.
    await settle(store, "T1", "pro", 134_000, "koi")
    await hit(store, "T1", "koi")
    await settle(store, "T1", "pro", 67_000, "last month", lane=Lane.FLEX)
    clock.advance(3600)
    # This month: two hits of last month's koi, Flex on Pro and on Flash (half price each),
    # a Standard and a Priority render (no savings), another team's Flex render.
    await hit(store, "T1", "koi")
    await hit(store, "T1", "koi")
    await settle(store, "T1", "pro", 67_001, "flex pro", lane=Lane.FLEX)
    await settle(store, "T1", "flash", 19_500, "flex flash", lane=Lane.FLEX)
    await settle(store, "T1", "pro", 134_000, "standard")
    await settle(store, "T1", "pro", 241_200, "priority", lane=Lane.PRIORITY)
    await settle(store, "T2", "pro", 67_000, "other team", lane=Lane.FLEX)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(dashboard.link()) as r:
            page = await r.text()
            assert r.status == 200, page
    assert "Saved this month" in page
    assert "<dt>Cache savings</dt>" in page and "<dt>Flex/Batch savings</dt>" in page
    assert saving(page, "cache") == (268_000, "$0.27")
    # Standard would have been 134,002 + 39,000: saved 67,001 + 19,500.
    assert saving(page, "relaxed") == (86_501, "$0.09")
