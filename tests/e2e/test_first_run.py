"""The first run: `python -m bot run` with only GEMINI_API_KEY (no Slack, no Discord, no web
secret) serves the dashboard and prints a one-time link that signs the operator in."""

from __future__ import annotations

import re

import aiohttp

from tests.fakes.gemini_server import FakeGemini
from tests.support.bot_process import bot_env, read_log_until, start_bot, stop_cleanly

LINK = re.compile(r"^  (http://127\.0\.0\.1:(\d+)/dashboard/sign-in/\S+)$")


async def test_with_only_a_gemini_key_run_serves_the_dashboard_and_prints_a_sign_in_link(tmp_path):
    async with FakeGemini(image_scale=0.125) as gemini:
        env = bot_env(GEMINI_API_KEY="k", GEMINI_BASE_URL=gemini.url, DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}")
        proc, base = await start_bot("run", env, tmp_path)
        try:
            link = await read_log_until(proc, LINK)
            assert link[1].startswith(base + "/dashboard/sign-in/")  # this machine, the port bound
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
                async with browser.get(link[1]) as r:
                    page = await r.text()
                    assert r.status == 200 and r.url.path == "/dashboard/", page
                    assert "Overview" in page and "operator · local · moderator" in page
                async with browser.get(link[1]) as r:
                    assert r.status == 410  # one use
        finally:
            log = await stop_cleanly(proc)
    assert "random secret for this process only" in log and "restarts" in log
    assert "No chat platform is configured" in log
