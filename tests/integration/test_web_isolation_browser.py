"""Two teams on one dashboard, in Chromium: a second team's moderator sees none of the first
team's images, ledger rows, queued jobs or spend, on any page, and the first team's ids
typed into the address bar answer as if they did not exist."""

from __future__ import annotations

from bot.sign_in import Role
from tests.support.browser import BROWSER, expect, shot
from tests.support.gallery import render
from tests.support.web_queue import queue_job, service_for

pytestmark = BROWSER

SECRET_PROMPT = "the first team's secret lighthouse"


async def test_a_second_team_sees_nothing_of_the_first(dashboard, page):
    store = dashboard.store
    theirs = await render(store, SECRET_PROMPT, 134_000, team="T1", user="U1", color="firebrick")
    their_edit = await render(store, "the secret, at night", 40_000, team="T1", parent=theirs, color="navy")
    queued = await queue_job(service_for(dashboard), team="T1", prompt="a secret still queued")
    ours = await render(store, "our own harbour", 39_000, team="T2", user="U9", color="teal", model="flash")

    await page.goto(dashboard.link(team="T2", user="U9", role=Role.MODERATOR))
    for path, name in (
        ("/dashboard/", "overview"),
        ("/dashboard/gallery", "gallery"),
        ("/dashboard/ledger", "ledger"),
        ("/dashboard/queue", "queue"),
    ):
        response = await page.goto(dashboard.base + path)
        assert response is not None and response.status == 200, path
        text = await page.inner_text("main")
        assert "secret" not in text and "U1" not in text and "$0.13" not in text, (path, text)
        await shot(page, f"second-team-{name}")
    # Its own image is there, so the pages above did show data.
    await page.goto(dashboard.base + "/dashboard/gallery")
    await expect(page.locator("li.tile")).to_have_count(1)
    assert await page.locator("li.tile img").get_attribute("alt") == "our own harbour"
    csv = await page.request.get(dashboard.base + "/dashboard/ledger.csv")
    rows = (await csv.text()).splitlines()
    assert csv.status == 200 and len(rows) == 2 and "U9" in rows[1]  # a header and our one charge
    assert not any("U1" in row for row in rows)

    # The first team's ids, typed in: not found, like ids that never existed.
    for path in (
        f"/dashboard/gallery/{theirs}",
        f"/dashboard/gallery/{their_edit}/delete",
        f"/dashboard/images/{theirs}",
        f"/dashboard/playground/jobs/{queued.job_id}",
        f"/dashboard/playground/images/{theirs}/edit",
    ):
        response = await page.goto(dashboard.base + path)
        assert response is not None and response.status == 404, path
    # And a forged cancel of their queued job, with our own valid CSRF token, changes nothing.
    csrf = await page.evaluate("document.querySelector('form.sign-out input[name=csrf]').value")
    refused = await page.request.post(f"{dashboard.base}/dashboard/queue/{queued.job_id}/cancel", form={"csrf": csrf})
    assert refused.status == 404
    assert (await store.get_job(queued.job_id)).state.value == "queued"
    assert await store.get_image(theirs) is not None and ours != theirs
