"""The Ledger and Budgets pages in Chromium: a moderator sets a budget by the form and sees it and
its audit line, a member is refused, a ledger filter and its CSV link. The browser set-up (marks,
skips, the page, screenshots into tmp/artifacts) is tests/support/browser.py's."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

from bot.sign_in import Role
from tests.support.browser import BROWSER, expect, shot
from tests.support.store_contract import settle

pytestmark = BROWSER


async def test_a_moderator_sets_a_budget_and_sees_it_and_who_changed_it(dashboard, page):
    await page.goto(dashboard.link(user="M1", role=Role.MODERATOR))
    await page.get_by_role("link", name="Budgets").click()
    await expect(page.get_by_role("heading", name="Budgets", level=1)).to_be_visible()
    await expect(page.locator('tr[data-budget="default team"]')).to_be_visible()

    # A wrong amount first: the core's refusal, and nothing saved.
    await page.get_by_label("Budget for").select_option("user")
    await page.get_by_label("Channel or user ID").fill("U5")
    await page.get_by_label("Limit in US dollars").fill("lots")
    await page.get_by_role("button", name="Save budget").click()
    await expect(page.get_by_role("alert")).to_contain_text("A budget is an amount in dollars")
    await shot(page, "budgets-refused")
    assert await dashboard.store.budgets("T1") == []

    # Corrected by keyboard: the typed values were kept.
    await page.get_by_label("Limit in US dollars").fill("7.5")
    await page.get_by_label("Period").select_option("week")
    await page.get_by_label("Alert threshold").fill("0.7")
    await page.get_by_label("Alert threshold").press("Enter")
    await expect(page.get_by_role("status")).to_have_text("Budget saved.")
    row = page.locator('tr[data-budget="user U5"]')
    await expect(row).to_contain_text("$7.50")
    await expect(row).to_contain_text("week")
    await expect(row).to_contain_text("70%")
    await expect(page.locator("ol.changes li").first).to_contain_text(
        "M1 (web) set the user U5 budget to $7.50 per week, alert at 70% (new)"
    )
    await shot(page, "budgets")
    await page.set_viewport_size({"width": 390, "height": 800})
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await shot(page, "budgets-phone")


async def test_a_member_is_refused_the_money_pages(dashboard, page):
    await page.goto(dashboard.link(user="U1", role=Role.MEMBER))
    nav = page.get_by_role("navigation", name="Dashboard")
    await expect(nav.get_by_role("link", name="Overview")).to_be_visible()
    for moderators_only in ("Ledger", "Budgets"):
        await expect(nav.get_by_role("link", name=moderators_only)).to_have_count(0)
    for path in ("/dashboard/budgets", "/dashboard/ledger"):
        response = await page.goto(dashboard.base + path)
        assert response is not None and response.status == 403
        await expect(page.get_by_role("heading", name="Not available to you")).to_be_visible()
        await expect(page.get_by_role("alert")).to_contain_text("Only moderators")
    await shot(page, "ledger-member-refused")


async def test_a_ledger_filter_and_its_csv_link(dashboard, page):
    store = dashboard.store
    await settle(store, "T1", "pro", 134_000, "a", user="U1")
    await settle(store, "T1", "flash", 67_000, "b", user="U2")
    await settle(store, "T1", "flash", 45_000, "c", user="U1")
    await settle(store, "T2", "flash", 999_000, "other team", user="U1")
    await page.goto(dashboard.link(user="M1", role=Role.MODERATOR))
    await page.get_by_role("link", name="Ledger").click()
    rows = page.locator("table.ledger tbody tr")
    await expect(rows).to_have_count(3)

    await page.get_by_label("Model").fill("flash")
    await page.get_by_label("Lane").select_option("standard")
    await page.get_by_role("button", name="Show").click()
    await expect(rows).to_have_count(2)
    assert "model=flash" in page.url and "lane=standard" in page.url
    await expect(page.get_by_label("Model")).to_have_value("flash")  # the form keeps the filter
    await shot(page, "ledger")

    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Download these rows as CSV").click()
    download = await downloading.value
    text = await asyncio.to_thread(Path(await download.path()).read_text)
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [(r["user"], r["model"], r["cost_usd"]) for r in exported] == [
        ("U2", "flash", "0.067000"),
        ("U1", "flash", "0.045000"),
    ]

    # A bad date typed into the address: a message on the page, not an error page.
    response = await page.goto(dashboard.base + "/dashboard/ledger?from=soon")
    assert response is not None and response.status == 400
    await expect(page.get_by_role("alert")).to_contain_text("From takes a date like")
    await page.set_viewport_size({"width": 390, "height": 800})
    await page.goto(dashboard.base + "/dashboard/ledger")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await shot(page, "ledger-phone")
