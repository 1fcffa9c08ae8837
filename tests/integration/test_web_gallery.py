"""The gallery over HTTP (no browser): a team's images and only its own, an image's lineage
with the running cost of its thread, and delete: for the requester and moderators only,
behind a CSRF token, really deleting. The browser test is test_web_gallery_browser.py."""

from __future__ import annotations

import html
import logging
import re

import aiohttp

from bot.apology import STORE_DOWN_NOW
from bot.sign_in import Role
from bot.store.ports import StoreUnavailable
from tests.support.gallery import render

GALLERY = "/dashboard/gallery"


async def signed_in(dashboard, team: str = "T1", user: str = "U1", role: Role = Role.MEMBER) -> aiohttp.ClientSession:
    """A browser of its own (its own cookie jar), signed in through a link."""
    browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with browser.get(dashboard.link(team, user, role)) as r:
        assert r.status == 200
    return browser


async def get(browser, dashboard, path: str) -> tuple[int, str]:
    async with browser.get(dashboard.base + path, allow_redirects=False) as r:
        return r.status, await r.text()


async def csrf_of(browser, dashboard) -> str:
    _, page = await get(browser, dashboard, GALLERY)
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


async def post_delete(browser, dashboard, image_id, csrf: str | None) -> tuple[int, str, str]:
    form = {"csrf": csrf} if csrf is not None else {}
    async with browser.post(f"{dashboard.base}{GALLERY}/{image_id}/delete", data=form, allow_redirects=False) as r:
        return r.status, r.headers.get("Location", ""), await r.text()


async def test_the_gallery_lists_the_team_s_images_newest_first_24_a_page(dashboard):
    store = dashboard.store
    ids = [await render(store, f"picture {n}", 10_000 + n, color="red") for n in range(25)]
    last = await render(store, "a <b>bold</b> fox", 134_000, user="U2", color="green", width=16, height=8)
    browser = await signed_in(dashboard)
    try:
        status, page = await get(browser, dashboard, GALLERY)
        assert status == 200 and "26 in all" in page and "Page 1 of 2" in page
        shown = [int(i) for i in re.findall(r'data-image-id="(\d+)"', page)]
        assert shown == [last, *reversed(ids[2:])]  # 24, newest first
        # The thumbnail: its bytes' URL, its size scaled to 240 px, the prompt as its alt (escaped).
        assert (
            f'<img src="/dashboard/images/{last}" width="240" height="120" '
            'alt="a &lt;b&gt;bold&lt;/b&gt; fox" loading="lazy">' in page
        )
        assert "$0.13" in page and "U2" in page and "pro" in page and "standard" in page and "1K" in page
        status, older = await get(browser, dashboard, GALLERY + "?page=2")
        assert [int(i) for i in re.findall(r'data-image-id="(\d+)"', older)] == [ids[1], ids[0]]
        assert "Page 2 of 2" in older
        # A page number that is not one is the first page; one past the end, the last.
        assert "Page 1 of 2" in (await get(browser, dashboard, GALLERY + "?page=abc"))[1]
        assert "Page 2 of 2" in (await get(browser, dashboard, GALLERY + "?page=99"))[1]
    finally:
        await browser.close()


async def test_a_second_team_sees_none_of_the_first_team_s_images(dashboard):
    ours = await render(dashboard.store, "a secret prototype", 134_000, color="red")
    theirs = await signed_in(dashboard, team="T2", user="U9", role=Role.MODERATOR)
    try:
        status, page = await get(theirs, dashboard, GALLERY)
        assert status == 200 and "0 in all" in page and "secret prototype" not in page
        for path in (f"{GALLERY}/{ours}", f"{GALLERY}/{ours}/delete", f"/dashboard/images/{ours}"):
            status, page = await get(theirs, dashboard, path)
            assert status == 404 and "secret prototype" not in page
        status, _, page = await post_delete(theirs, dashboard, ours, await csrf_of(theirs, dashboard))
        assert status == 404 and "Nothing was changed" in page
        assert await dashboard.store.get_image(ours) is not None
    finally:
        await theirs.close()


async def test_an_image_page_shows_its_lineage_and_the_running_cost_of_its_thread(dashboard):
    store = dashboard.store
    root = await render(store, "a lighthouse", 134_000, color="red")
    warmer = await render(store, "warmer light", 40_000, parent=root, color="orange")
    night = await render(store, "at night", 30_000, parent=warmer, color="navy")
    storm = await render(store, "add a storm", 20_000, parent=root, color="gray")
    browser = await signed_in(dashboard)
    try:
        status, page = await get(browser, dashboard, f"{GALLERY}/{warmer}")
        assert status == 200 and "<h1>warmer light</h1>" in page
        assert f'<img src="/dashboard/images/{warmer}" width="720" height="720" alt="warmer light">' in page
        assert "Edit 1 of this thread" in page and "running cost $0.17 · thread total $0.22" in page
        assert 'data-running-micros="174000" data-thread-micros="224000"' in page
        # The tree: the root, its first edit (this image) and that one's edit, then the branch.
        steps = re.findall(r'class="step[^"]*"\s+data-image-id="(\d+)" data-cost-micros="(\d+)"', page)
        assert steps == [(str(root), "134000"), (str(warmer), "40000"), (str(night), "30000"), (str(storm), "20000")]
        assert f'href="/dashboard/gallery/{night}"' in page and 'aria-current="true"' in page
        status, page = await get(browser, dashboard, f"{GALLERY}/{night}")
        assert "Edit 2 of this thread" in page and 'data-running-micros="204000"' in page
        for bad in ("abc", "0", "-3", "999999"):
            status, page = await get(browser, dashboard, f"{GALLERY}/{bad}")
            assert status == 404 and "No such image" in page
    finally:
        await browser.close()


async def test_only_the_requester_or_a_moderator_may_delete(dashboard):
    mine = await render(dashboard.store, "my fox", 134_000, user="U1", color="red")
    other = await signed_in(dashboard, user="U2")
    moderator = await signed_in(dashboard, user="M1", role=Role.MODERATOR)
    try:
        status, page = await get(other, dashboard, f"{GALLERY}/{mine}")
        assert status == 200 and "Delete this image" not in page
        status, page = await get(other, dashboard, f"{GALLERY}/{mine}/delete")
        assert status == 403 and "Only the person who asked for it" in page
        status, _, page = await post_delete(other, dashboard, mine, await csrf_of(other, dashboard))
        assert status == 403 and "Nothing was changed" in page
        assert await dashboard.store.get_image(mine) is not None

        status, page = await get(moderator, dashboard, f"{GALLERY}/{mine}/delete")
        assert status == 200 and "Delete this image?" in page and 'name="csrf"' in page
        status, location, _ = await post_delete(moderator, dashboard, mine, await csrf_of(moderator, dashboard))
        assert (status, location) == (303, GALLERY + "?deleted=1")
        assert await dashboard.store.get_image(mine) is None
        status, page = await get(moderator, dashboard, GALLERY + "?deleted=1")
        assert "The image was deleted." in page and "my fox" not in page
    finally:
        await other.close()
        await moderator.close()


async def test_the_requester_deletes_and_the_bytes_are_gone_but_the_thread_keeps_its_cost(dashboard):
    root = await render(dashboard.store, "a lighthouse", 134_000, color="red")
    edit = await render(dashboard.store, "warmer light", 40_000, parent=root, color="orange")
    browser = await signed_in(dashboard)
    try:
        status, page = await get(browser, dashboard, f"{GALLERY}/{root}")
        assert f'href="/dashboard/gallery/{root}/delete"' in page
        status, location, _ = await post_delete(browser, dashboard, root, await csrf_of(browser, dashboard))
        assert status == 303
        assert (await get(browser, dashboard, f"/dashboard/images/{root}"))[0] == 404
        assert (await get(browser, dashboard, f"{GALLERY}/{root}"))[0] == 404
        status, page = await get(browser, dashboard, f"{GALLERY}/{edit}")
        assert status == 200 and "(deleted)" in page and 'data-thread-micros="174000"' in page
        assert f'src="/dashboard/images/{root}"' not in page
        status, _, page = await post_delete(browser, dashboard, root, await csrf_of(browser, dashboard))
        assert status == 404  # once
    finally:
        await browser.close()


async def test_a_delete_without_the_csrf_token_is_refused_and_changes_nothing(dashboard):
    mine = await render(dashboard.store, "my fox", 134_000, color="red")
    browser = await signed_in(dashboard)
    try:
        for token in (None, "wrong"):
            status, _, page = await post_delete(browser, dashboard, mine, token)
            assert status == 403 and "This form has expired" in page
        assert await dashboard.store.get_image(mine) is not None
    finally:
        await browser.close()


async def test_a_page_met_by_a_database_outage_says_so_and_logs_one_line(dashboard, monkeypatch, caplog):
    # Review: the dashboard's one error handler logged a traceback and showed "Something went
    # wrong" (500) for an expected outage, which chat already words as one.
    image_id = await render(dashboard.store, "a koi pond", 134_000)
    browser = await signed_in(dashboard)

    async def store_down(*args, **kwargs):
        raise StoreUnavailable("couldn't get a connection after 10.00 sec")

    monkeypatch.setattr(dashboard.store, "get_image", store_down)
    try:
        with caplog.at_level(logging.WARNING):
            status, page = await get(browser, dashboard, f"/dashboard/images/{image_id}")
    finally:
        await browser.close()
    assert status == 503 and "The database is unavailable" in page
    assert STORE_DOWN_NOW in html.unescape(page)
    assert not [r for r in caplog.records if r.exc_info], "an outage is one log line, not a trace"


async def test_a_blend_says_so_in_the_gallery_on_its_page_and_in_its_lineage(dashboard):
    store = dashboard.store
    blend = await render(store, "the three of them at a picnic", 140_000, input_images=3)
    edit = await render(store, "at dusk", 40_000, parent=blend, color="orange")
    browser = await signed_in(dashboard)
    try:
        _, page = await get(browser, dashboard, GALLERY)
        assert page.count("<dt>Inputs</dt><dd>blend of 3 images</dd>") == 1  # the edit is no blend
        _, page = await get(browser, dashboard, f"{GALLERY}/{blend}")
        assert "<dt>Inputs</dt><dd>blend of 3 images</dd>" in page
        _, page = await get(browser, dashboard, f"{GALLERY}/{edit}")
        assert "<dt>Inputs</dt>" not in page
        # The lineage names the blend its thread started from.
        assert re.search(rf'data-image-id="{blend}".*?<strong>Original</strong> · blend of 3 images', page, re.S)
    finally:
        await browser.close()
