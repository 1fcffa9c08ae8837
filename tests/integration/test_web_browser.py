"""The web dashboard in a real browser (tests/support/browser.py: Chromium through Playwright,
skipped with the reason where missing; each page's screenshot kept under tmp/artifacts/)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.money.budgets import Budget, Period, Scope
from bot.sign_in import Role
from tests.support.browser import BROWSER, expect, shot
from tests.support.clock import FakeClock
from tests.support.dashboard import start_dashboard
from tests.support.store_contract import settle

DAY = 86400
pytestmark = BROWSER


# Mid-month, mid-afternoon: "this month" holds the last two days whatever today's date is
# (a test run on the 1st of a month must draw the same figures).
MID_MONTH = datetime(2026, 11, 14, 15, 0, tzinfo=UTC).timestamp()


@pytest.fixture
async def dashboard(tmp_path):
    # The server's clock is fixed (tests move it); the browser's cookies need no real time.
    started = await start_dashboard(str(tmp_path / "web.db"), FakeClock(MID_MONTH))
    yield started
    await started.close()


async def test_sign_in_through_a_link_lands_on_the_overview(dashboard, page):
    response = await page.goto(dashboard.link(user="U1", role=Role.MODERATOR))
    assert response is not None and response.status == 200
    assert page.url == dashboard.base + "/dashboard/"
    assert await page.get_by_role("heading", name="Overview", level=1).is_visible()
    assert await page.title() == "Overview · imagine-bot"
    assert "U1 · T1 · moderator" in await page.inner_text("header")
    # The cookie as the browser holds it: HttpOnly, SameSite=Lax, this path only.
    [cookie] = await page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (
        "imagine_session",
        True,
        "Lax",
        "/dashboard",
    )
    assert await page.evaluate("document.cookie") == ""  # out of scripts' reach
    await shot(page, "overview-empty")


async def test_an_expired_link_and_a_replayed_link_are_refused(dashboard, page):
    stale = dashboard.link()
    dashboard.clock.advance(601)
    response = await page.goto(stale)
    assert response is not None and response.status == 410
    assert await page.get_by_role("heading", name="This link has expired").is_visible()
    await shot(page, "link-expired")

    fresh = dashboard.link()
    await page.goto(fresh)
    await page.context.clear_cookies()
    response = await page.goto(fresh)
    assert response is not None and response.status == 410
    assert await page.get_by_role("heading", name="This link was already used").is_visible()
    await shot(page, "link-used")
    response = await page.goto(dashboard.base + "/dashboard/")
    assert response is not None and response.status == 401  # the replay signed no one in
    await shot(page, "signed-out")


async def test_the_overview_draws_the_ledger_s_figures(dashboard, page):
    store, clock = dashboard.store, dashboard.clock
    now = clock.now
    midnight = now - now % DAY
    await store.set_budget(Budget("T1", Scope.TEAM, "", 10_000_000, Period.MONTH, soft_threshold=0.75), "mod")
    await store.set_budget(Budget("T1", Scope.USER, "U1", 2_000_000, Period.MONTH, soft_threshold=0.5), "mod")
    # Two days back: pro $0.40 and flash $0.20 (U1); today: pro $1.20 (U1), flash $0.30 (U2).
    clock.now = midnight - 2 * DAY + 3600
    await settle(store, "T1", "pro", 400_000, "a")
    await settle(store, "T1", "flash", 200_000, "b")
    clock.now = now
    await settle(store, "T1", "pro", 1_200_000, "c")
    await settle(store, "T1", "flash", 300_000, "d", user="U2")
    await settle(store, "T2", "pro", 5_000_000, "another team")

    await page.goto(dashboard.link(user="U1"))
    chart = page.locator("#daily-chart")
    assert await chart.get_attribute("data-max-total") == "$1.50"
    days = chart.locator("g.day")
    assert await days.count() == 30

    async def segments(day_offset: int) -> list[tuple[str, int, float]]:
        day = page.locator(f"g.day:nth-of-type({30 - day_offset})")
        rects = day.locator("rect")
        return [
            (
                await rects.nth(i).get_attribute("data-model") or "",
                int(await rects.nth(i).get_attribute("data-micros") or 0),
                float(await rects.nth(i).get_attribute("height") or 0),
            )
            for i in range(await rects.count())
        ]

    # Heights out of 180 px, scaled to the busiest day ($1.50 today).
    assert await segments(0) == [("flash", 300_000, 36.0), ("pro", 1_200_000, 144.0)]
    assert await segments(2) == [("flash", 200_000, 24.0), ("pro", 400_000, 48.0)]
    assert await segments(1) == []
    assert (await days.last.bounding_box() or {}).get("height", 0) > 0  # drawn, not just in the markup

    # The budgets that apply: the team's ($2.10 of $10: 21%) and mine ($1.80 of $2: 90%, past 50%).
    team = page.locator('li[data-budget="team"]')
    assert await team.locator("rect.used").get_attribute("data-percent") == "21.0"
    assert await team.locator("line.threshold").get_attribute("data-percent") == "75.0"
    mine = page.locator('li[data-budget="user U1"]')
    assert await mine.locator("rect.used").get_attribute("data-percent") == "90.0"
    assert await mine.locator("rect.used").get_attribute("class") == "used warn"
    assert "Spent $1.80, held $0.00, left $0.20" in await mine.inner_text()
    # This month's top spenders.
    users = page.locator('ol[data-top="user"] li')
    names = [await users.nth(i).get_attribute("data-name") for i in range(await users.count())]
    assert names[0] == "U1" and "U2" in names
    assert await page.locator('ol[data-top="user"] li[data-name="U2"]').get_attribute("data-micros") == "300000"
    await shot(page, "overview")

    # On a phone: nothing wider than the screen.
    await page.set_viewport_size({"width": 375, "height": 740})
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await shot(page, "overview-phone")


async def test_a_post_without_the_csrf_token_is_refused(dashboard, page):
    await page.goto(dashboard.link())
    refused = await page.request.post(dashboard.base + "/dashboard/sign-out", form={"not": "csrf"})
    assert refused.status == 403
    # The same with the form itself, its token taken out.
    await page.evaluate("document.querySelector('form.sign-out input[name=csrf]').remove()")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="This form has expired")).to_be_visible()
    await shot(page, "csrf-refused")
    response = await page.goto(dashboard.base + "/dashboard/")
    assert response is not None and response.status == 200  # still signed in


async def test_signing_out_by_keyboard_only(dashboard, page):
    await page.goto(dashboard.link())
    # Tab from the top: the skip link, the nav, then the sign-out button.
    for _ in range(10):
        await page.keyboard.press("Tab")
        focused = await page.evaluate("document.activeElement.textContent.trim()")
        if focused == "Sign out":
            break
    else:
        pytest.fail("the Sign out button cannot be reached with Tab")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    await shot(page, "signed-out-by-keyboard")
    response = await page.goto(dashboard.base + "/dashboard/")
    assert response is not None and response.status == 401
