"""The queue page in a real browser (tests/support/browser.py): it updates live as jobs are
queued through the service, with no reload, and cancelling from it releases the hold."""

from __future__ import annotations

import pytest

from bot.money.budgets import Budget, Period, Scope
from bot.sign_in import Role
from bot.types import JobState
from tests.support.browser import BROWSER, expect, shot
from tests.support.web_queue import queue_job, service_for

pytestmark = BROWSER


async def test_the_queue_updates_live_and_cancelling_by_keyboard_releases_the_hold(dashboard, page):
    store, service = dashboard.store, service_for(dashboard)
    await store.set_budget(Budget("T1", Scope.TEAM, "", 10_000_000, Period.MONTH), "mod")
    await page.goto(dashboard.link(user="U1"))
    await page.get_by_role("link", name="Queue").click()
    await expect(page.get_by_role("heading", name="Queue", level=1)).to_be_visible()
    await expect(page.locator("#queue-live")).to_have_attribute("data-state", "live")
    await expect(page.get_by_text("Nothing is queued or running")).to_be_visible()
    await shot(page, "queue-empty")
    await page.evaluate("window.sameDocument = true")  # gone if the page reloads

    mine = await queue_job(service, user="U1", prompt="a koi pond at dawn", model="flash")
    hers = await queue_job(service, user="U2", prompt="a <b>bold</b> heron")
    await queue_job(service, team="T2", user="V1", prompt="another team's fox")
    row = page.locator(f'tr[data-job="{mine.job_id}"]')
    await expect(row).to_be_visible()
    await expect(page.locator(f'tr[data-job="{hers.job_id}"]')).to_be_visible()
    assert await page.evaluate("window.sameDocument") is True  # updated in place, not reloaded
    await expect(page.locator("#queue-summary")).to_have_text("Queue updated: 2 jobs: 0 running, 2 queued.")
    assert "fox" not in await page.inner_text("main")
    held = (await store.get_job(mine.job_id)).held_micros
    assert await row.get_attribute("data-position") == str(await store.position(mine.job_id))
    assert await row.get_attribute("data-held-micros") == str(held)
    assert "a <b>bold</b> heron" in await page.locator(f'tr[data-job="{hers.job_id}"]').inner_text()  # as text
    await expect(page.locator(f'tr[data-job="{hers.job_id}"] button')).to_have_count(0)  # not mine to cancel
    await shot(page, "queue")

    # Cancel with the keyboard only: Tab to my job's button, then Enter.
    for _ in range(20):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.getAttribute('aria-label')") == f"Cancel job {mine.job_id}":
            break
    else:
        pytest.fail("the Cancel button cannot be reached with Tab")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status")).to_have_text(f"Job #{mine.job_id} was cancelled, and its hold released.")
    await expect(row).to_have_count(0)
    await shot(page, "queue-cancelled")

    job = await store.get_job(mine.job_id)
    assert job.state is JobState.CANCELLED and job.held_micros == 0
    assert [(r["entry"], r["cost_micros"]) for r in await store.ledger(team="T1") if r["job_id"] == job.id] == [
        ("reservation", held),
        ("release", held),
    ]
    [status] = await store.budget_statuses("T1", None, None)
    assert (status.spent_micros, status.reserved_micros) == (0, (await store.get_job(hers.job_id)).held_micros)

    # The page stays live after the cancel's redirect: U2's job leaves it when it is cancelled elsewhere.
    await expect(page.locator("#queue-live")).to_have_attribute("data-state", "live")
    assert await service.cancel(hers.job_id)
    await expect(page.get_by_text("Nothing is queued or running")).to_be_visible()

    # On a phone: the table scrolls in its box, the page is no wider than the screen.
    await queue_job(service, user="U1", prompt="a very long prompt " * 10)
    await expect(page.locator("table.queue")).to_be_visible()
    await page.set_viewport_size({"width": 390, "height": 800})
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await shot(page, "queue-phone")


async def test_a_moderator_cancels_a_member_s_job_from_the_page(dashboard, page):
    service = service_for(dashboard)
    theirs = await queue_job(service, user="U2", prompt="a member's request")
    await page.goto(dashboard.link(user="M1", role=Role.MODERATOR))
    await page.goto(dashboard.base + "/dashboard/queue")
    await page.get_by_role("button", name=f"Cancel job {theirs.job_id}").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Job #{theirs.job_id} was cancelled")
    assert (await dashboard.store.get_job(theirs.job_id)).state is JobState.CANCELLED
