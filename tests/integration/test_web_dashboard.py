"""The web dashboard over HTTP (no browser): sign-in links, cookies, CSRF, refusals and what a
session may see. The browser tests (test_web_browser.py) drive the same flows in Chromium."""

from __future__ import annotations

import logging
import re

import aiohttp

from bot.money.budgets import Budget, Period, Scope
from bot.sign_in import Role
from tests.support.clock import FakeClock
from tests.support.dashboard import start_dashboard
from tests.support.store_contract import settle


async def sign_in(browser, dashboard, **kwargs) -> str:
    async with browser.get(dashboard.link(**kwargs)) as r:
        assert r.status == 200 and r.url.path == "/dashboard/"
        return await r.text()


async def test_a_link_signs_in_with_a_safe_cookie_and_lands_on_the_overview(dashboard, browser):
    async with browser.get(dashboard.link(), allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == "/dashboard/"
        cookie = r.cookies["imagine_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/dashboard"
        assert not cookie["secure"]  # the public URL is http here
        assert int(cookie["max-age"]) == 3600
        assert r.headers["Referrer-Policy"] == "no-referrer"
    async with browser.get(dashboard.base + "/dashboard/") as r:
        page = await r.text()
        assert r.status == 200 and "Overview" in page and "U1 · T1 · member" in page


async def test_behind_https_the_cookie_is_secure(tmp_path, browser):
    dashboard = await start_dashboard(str(tmp_path / "s.db"), FakeClock(), public_url="https://dash.example.com")
    try:
        async with browser.get(dashboard.link(), allow_redirects=False) as r:
            assert r.cookies["imagine_session"]["secure"]
    finally:
        await dashboard.close()


async def test_a_replayed_link_gets_410_and_changes_nothing(dashboard, browser):
    link = dashboard.link()
    await sign_in_with(browser, link)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        async with other.get(link, allow_redirects=False) as r:
            assert r.status == 410 and "already used" in await r.text()
            assert "imagine_session" not in r.cookies


async def sign_in_with(browser, link: str) -> None:
    async with browser.get(link) as r:
        assert r.status == 200


async def test_an_expired_link_gets_410(dashboard, browser):
    link = dashboard.link()
    dashboard.clock.advance(601)
    async with browser.get(link) as r:
        assert r.status == 410 and "expired" in await r.text()


async def test_a_forged_link_gets_403_without_a_traceback(dashboard, browser, caplog):
    link = dashboard.link()
    forged = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
    with caplog.at_level("INFO"):
        async with browser.get(forged) as r:
            page = await r.text()
    assert r.status == 403 and "not valid" in page and "Traceback" not in page
    token = forged.rsplit("/", 1)[1]
    assert "forged link" in caplog.text and token not in caplog.text


async def test_bad_links_from_one_client_are_rate_limited(dashboard, browser):
    for _ in range(10):
        async with browser.get(dashboard.base + "/dashboard/sign-in/nonsense") as r:
            assert r.status == 403
    async with browser.get(dashboard.base + "/dashboard/sign-in/nonsense") as r:
        assert r.status == 429 and int(r.headers["Retry-After"]) > 0
    # A good link still works: only bad ones are counted.
    await sign_in_with(browser, dashboard.link())


async def test_without_a_session_the_overview_asks_for_a_link(dashboard, browser):
    async with browser.get(dashboard.base + "/dashboard/") as r:
        assert r.status == 401 and "dashboard-link" in await r.text()


async def test_a_session_ends_after_its_time(dashboard, browser):
    await sign_in(browser, dashboard)
    dashboard.clock.advance(3601)
    async with browser.get(dashboard.base + "/dashboard/") as r:
        assert r.status == 401


async def test_a_post_without_the_csrf_token_is_refused_and_with_it_signs_out(dashboard, browser):
    page = await sign_in(browser, dashboard)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    for form in ({}, {"csrf": "wrong"}):
        async with browser.post(dashboard.base + "/dashboard/sign-out", data=form) as r:
            assert r.status == 403 and "expired" in await r.text()
    async with browser.get(dashboard.base + "/dashboard/") as r:
        assert r.status == 200  # still signed in
    async with browser.post(dashboard.base + "/dashboard/sign-out", data={"csrf": csrf.group(1)}) as r:
        assert r.status == 200 and "signed out" in await r.text()
    async with browser.get(dashboard.base + "/dashboard/") as r:
        assert r.status == 401


async def test_a_session_sees_only_its_own_team(dashboard, browser):
    await dashboard.store.set_budget(Budget("T1", Scope.TEAM, "", 50_000_000, Period.MONTH, soft_threshold=0.8), "mod")
    await settle(dashboard.store, "T1", "pro", 1_250_000, "ours")
    await settle(dashboard.store, "T2", "flash", 9_990_000, "theirs")
    page = await sign_in(browser, dashboard, team="T2", user="U9", role=Role.MODERATOR)
    assert "$9.99" in page and "$1.25" not in page and "$50.00" not in page
    assert 'data-model="pro"' not in page and 'data-model="flash"' in page


async def test_a_head_request_does_not_use_a_link_up(dashboard, browser):
    link = dashboard.link()
    async with browser.head(link) as r:
        assert r.status == 405
    await sign_in_with(browser, link)


async def test_an_unknown_page_and_static_assets(dashboard, browser):
    async with browser.get(dashboard.base + "/dashboard/nowhere") as r:
        assert r.status == 404 and "no such page" in await r.text()
    async with browser.get(dashboard.base + "/dashboard/static/style.css") as r:
        assert r.status == 200 and "text/css" in r.headers["Content-Type"]


async def test_the_bot_serves_the_dashboard_and_its_links_sign_in(tmp_path, browser, caplog):
    """Wired as in production: the `web` process's server (start_adapters) serves the dashboard
    and accepts bootstrap's links; without the secret there is no dashboard."""
    from bot import bootstrap
    from bot.settings import Settings

    env = {"database_url": f"sqlite:///{tmp_path / 'bot.db'}", "port": 0, "imagine_web_secret": "k" * 40}

    settings = Settings(**env)  # type: ignore[arg-type]
    runtime = await bootstrap.build(settings, notifiers=[])
    caplog.set_level(logging.INFO)
    closers = await bootstrap.start_adapters(runtime, bootstrap.ROLES["web"])
    try:
        port = int(re.search(r"HTTP on [0-9.]+:(\d+)", caplog.text).group(1))  # type: ignore[union-attr]
        link = bootstrap.sign_in(runtime).link("T1", "U1", Role.MODERATOR)
        path = link.split("/dashboard/", 1)[1]
        async with browser.get(f"http://127.0.0.1:{port}/dashboard/{path}") as r:
            assert r.status == 200 and "U1 · T1 · moderator" in await r.text()
    finally:
        for close in reversed(closers):
            await close()
        await runtime.close()

    no_secret = await bootstrap.build(Settings(**{**env, "imagine_web_secret": None}), notifiers=[])  # type: ignore[arg-type]
    caplog.clear()
    closers = await bootstrap.start_adapters(no_secret, bootstrap.ROLES["web"])
    try:
        assert "web dashboard off" in caplog.text and "/dashboard" not in caplog.text.split("HTTP on")[1]
    finally:
        for close in reversed(closers):
            await close()
        await no_secret.close()


def test_dashboard_link_prints_a_link_on_the_public_url(tmp_path, capsys, monkeypatch):
    from bot.cli import main

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'bot.db'}")
    monkeypatch.delenv("IMAGINE_WEB_SECRET", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env
    assert main(["dashboard-link", "--team", "T1", "--user", "U1", "--moderator"]) == 4
    assert "IMAGINE_WEB_SECRET" in capsys.readouterr().err
    monkeypatch.setenv("IMAGINE_WEB_SECRET", "k" * 40)
    monkeypatch.setenv("IMAGINE_PUBLIC_URL", "https://dash.example.com/")
    assert main(["dashboard-link", "--team", "T1", "--user", "U1"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("https://dash.example.com/dashboard/sign-in/") and "10 minutes" in err
    assert main(["dashboard-link", "--team", " ", "--user", "U1"]) == 2


async def test_an_image_is_served_to_its_own_team_only(dashboard, browser):
    ours = (await dashboard.store.get_job(await settle(dashboard.store, "T1", "pro", 134_000, "ours"))).result_image_id
    theirs = (await dashboard.store.get_job(await settle(dashboard.store, "T2", "pro", 134_000, "x"))).result_image_id
    async with browser.get(f"{dashboard.base}/dashboard/images/{ours}") as r:
        assert r.status == 401  # not signed in yet
    await sign_in(browser, dashboard)
    async with browser.get(f"{dashboard.base}/dashboard/images/{ours}") as r:
        body, etag = await r.read(), r.headers["ETag"]
        assert r.status == 200 and r.content_type == "image/png" and body.startswith(b"\x89PNG")
        assert r.headers["Cache-Control"] == "private, no-cache"
    async with browser.get(f"{dashboard.base}/dashboard/images/{ours}", headers={"If-None-Match": etag}) as r:
        assert r.status == 304 and await r.read() == b""
    # Another team's image, an unknown id and a malformed one all look the same: not found.
    for other in (theirs, 999_999, "abc", -1):
        async with browser.get(f"{dashboard.base}/dashboard/images/{other}") as r:
            assert r.status == 404 and "No such image" in await r.text()


async def test_the_pages_short_addresses_lead_to_them(dashboard, browser):
    for short, page in (
        ("/", "/dashboard/"),
        ("/gallery", "/dashboard/gallery"),
        ("/queue", "/dashboard/queue"),
        ("/playground", "/dashboard/playground"),
        ("/ledger?user=U1", "/dashboard/ledger?user=U1"),
        ("/budgets", "/dashboard/budgets"),
    ):
        async with browser.get(dashboard.base + short, allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (302, page), short
