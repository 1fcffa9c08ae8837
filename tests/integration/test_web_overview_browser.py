"""The overview's savings and the link-preview page in a real browser (Chromium,
tests/support/browser.py): the two labelled figures on a phone-sized screen, and a preview's
page that leaves the link for its person. Screenshots go to tmp/artifacts/."""

from __future__ import annotations

import pytest

from bot.types import Lane
from tests.integration.store.test_store_savings import hit
from tests.support.browser import BROWSER, real_time_dashboard, shot
from tests.support.store_contract import settle

pytestmark = BROWSER

PHONE = {"width": 390, "height": 844}


@pytest.fixture
async def dashboard(tmp_path):
    # The savings are this month's: the server's clock is today's.
    async with real_time_dashboard(str(tmp_path / "web.db")) as started:
        yield started


async def test_the_overview_shows_both_savings_labelled_on_a_phone(dashboard, page):
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


async def test_a_link_preview_gets_a_page_and_the_browser_then_signs_in(dashboard, page):
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
