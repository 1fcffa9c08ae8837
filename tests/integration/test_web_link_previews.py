"""A chat app's link preview must not use up a one-time sign-in link: the known link expanders
get a page that says to open the link in a browser, and the link still signs its person in."""

from __future__ import annotations

import aiohttp
import pytest

EXPANDERS = [
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Slack-ImgProxy (+https://api.slack.com/robots)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
]


@pytest.mark.parametrize("agent", EXPANDERS)
async def test_a_link_preview_gets_a_page_and_leaves_the_link_unused(dashboard, agent):
    link = dashboard.link()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as preview:
        for _ in range(2):  # previews often fetch twice
            async with preview.get(link, headers={"User-Agent": agent}, allow_redirects=False) as r:
                page = await r.text()
                assert r.status == 200 and "Open this link in your browser" in page, page
                assert "imagine_session" not in r.cookies
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(link) as r:
            assert r.status == 200 and r.url.path == "/dashboard/" and "U1 · T1 · member" in await r.text()
        async with browser.get(link, allow_redirects=False) as r:
            assert r.status == 410  # and then it is used up, as any link


async def test_a_browser_is_not_taken_for_a_preview(dashboard):
    chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
    async with aiohttp.ClientSession() as browser:
        async with browser.get(dashboard.link(), headers={"User-Agent": chrome}, allow_redirects=False) as r:
            assert r.status == 303 and "imagine_session" in r.cookies
