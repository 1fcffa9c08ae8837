"""A dashboard session outlives its team's place on the `[access] teams` allow-list: the
operator takes the team off and restarts the bot, and the signed session cookie is still
genuine. From then on every signed-in page refuses it alike (a 403 saying the bot is not
enabled for the team), image bytes and a job's JSON status included, and changes nothing."""

from __future__ import annotations

import html
import pprint
import re

import aiohttp

from bot.access import NOT_ON_ALLOW_LIST
from policies.config import PolicyBook
from tests.support.clock import FakeClock
from tests.support.dashboard import start_dashboard
from tests.support.gallery import render

# Routes that need no session of a team on the list: signing in and out, and the stylesheets.
OPEN = ("/dashboard/sign-in/", "/dashboard/sign-out", "/dashboard/static")


def dashboard_routes(app) -> list[tuple[str, str]]:
    """(method, path pattern) of every dashboard route, so a route added later is covered too."""
    found = []
    for route in app.router.routes():
        if route.method not in ("GET", "POST") or route.resource is None:
            continue
        path = route.resource.canonical
        if path.startswith("/dashboard") and not path.startswith(OPEN):
            found.append((route.method, path))
    return found


def filled(pattern: str, image_id: int, job_id: int) -> str:
    path = re.sub(r"\{image_id[^}]*\}", str(image_id), pattern)
    return re.sub(r"\{job_id[^}]*\}", str(job_id), path)


async def test_a_team_taken_off_the_allow_list_is_refused_on_every_page(tmp_path):
    path = str(tmp_path / "web.db")
    clock = FakeClock()
    before = await start_dashboard(path, clock, policies=PolicyBook(access={"teams": ["T1", "T2"]}))
    browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        image_id = await render(before.store, "a lighthouse", 134_000)
        stored = await before.store.get_image(image_id)
        assert stored is not None and stored.job_id is not None
        job_id = stored.job_id
        async with browser.get(before.link("T1", "U1")) as r:
            overview = await r.text()
            assert r.status == 200, overview
        csrf = re.search(r'name="csrf" value="([^"]+)"', overview)
        assert csrf is not None
        async with browser.get(f"{before.base}/dashboard/images/{image_id}") as r:
            assert r.status == 200 and r.content_type == "image/png"
        await before.close()

        # The operator takes T1 off the list and restarts: the session cookie is still genuine.
        after = await start_dashboard(path, clock, policies=PolicyBook(access={"teams": ["T2"]}))
        try:
            routes = dashboard_routes(after.runner.app)
            assert ("GET", "/dashboard/images/{image_id}") in routes and len(routes) > 15, routes
            answers = {}
            for method, pattern in routes:
                url = after.base + filled(pattern, image_id, job_id)
                form = {"csrf": csrf.group(1), "prompt": "again", "choice": "run", "token": "t", "usd": "5"}
                try:
                    # A bounded wait: the queue's live stream, when served, would run for minutes.
                    async with browser.request(
                        method, url, data=form if method == "POST" else None, timeout=aiohttp.ClientTimeout(total=5)
                    ) as r:
                        answers[(method, pattern)] = (r.status, await r.text(errors="replace"))
                except TimeoutError:
                    answers[(method, pattern)] = (0, "served (it did not end)")
            wrong = {
                route: status
                for route, (status, text) in answers.items()
                if status != 403 or "isn't enabled for this workspace or server" not in html.unescape(text)
            }
            assert not wrong, pprint.pformat(wrong)
            # Nothing was changed on its behalf: the image is still there, and no job was added.
            assert (await after.store.get_image(image_id)) is not None
            assert (await after.store.get_job(job_id + 1)) is None
            # A team still on the list signs in and is served.
            other = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            try:
                async with other.get(after.link("T2", "U9")) as r:
                    assert r.status == 200
                async with other.get(after.base + "/dashboard/gallery") as r:
                    assert r.status == 200
            finally:
                await other.close()
        finally:
            await after.close()
    finally:
        await browser.close()


def test_the_refusal_is_the_core_s_own_words():
    assert "isn't enabled for this workspace or server" in NOT_ON_ALLOW_LIST
