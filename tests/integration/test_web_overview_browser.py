"""The overview's savings and the link-preview page in a real browser (Chromium, as
test_web_browser.py drives it): the two labelled figures on a phone-sized screen, and a preview's
page that leaves the link for its person. Screenshots go to tmp/artifacts/."""

from __future__ import annotations

import time

import pytest

from bot.types import Lane
from tests.integration.store.test_store_savings import hit
from tests.integration.test_web_browser import CHROMIUM, page, pytestmark, shot  # noqa: F401  (fixture, marks)
from tests.support.clock import FakeClock
from tests.support.dashboard import start_dashboard
from tests.support.store_contract import settle

PHONE = {"width": 390, "height": 844}


@pytest.fixture
async def dashboard(tmp_path):
    started = await start_dashboard(str(tmp_path / "web.db"), FakeClock(time.time()))
    yield started
    await started.close()


async def test_the_overview_shows_both_savings_labelled_on_a_phone(dashboard, page):  # noqa: F811
    await settle(dashboard.store, "T1", "pro", 134_000, "koi")
    await hit(dashboard.store, "T1", "koi")
    await settle(dashboard.store, "T1", "pro", 67_000, "slow koi", lane=Lane.FLEX)
    await page.set_viewport_size(PHONE)
    await page.goto(dashboard.link())
    section = page.get_by_role("region", name="Saved this month")
    await section.scroll_into_view_if_needed()
    cache = section.locator('[data-saving="cache"]')
    relaxed = section.locator('[data-saving="relaxed"]')
    assert await cache.locator("dt").inner_text() == "Cache savings"
    assert (await cache.locator("dd").first.inner_text(), await cache.get_attribute("data-micros")) == (
        "$0.13",
        "134000",
    )
    assert await relaxed.locator("dt").inner_text() == "Flex/Batch savings"
    assert await relaxed.get_attribute("data-micros") == "67000"
    # Nothing runs off a phone's screen.
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await shot(page, "overview-savings-phone")


async def test_a_link_preview_gets_a_page_and_the_browser_then_signs_in(dashboard, page):  # noqa: F811
    link = dashboard.link()
    preview = await page.context.new_page()
    await preview.set_extra_http_headers({"User-Agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"})
    response = await preview.goto(link)
    assert response is not None and response.status == 200
    assert await preview.get_by_role("heading", name="Open this link in your browser").is_visible()
    await shot(preview, "sign-in-link-preview")
    await page.goto(link)
    assert page.url == dashboard.base + "/dashboard/"
    assert "U1 · T1 · member" in await page.inner_text("header")
