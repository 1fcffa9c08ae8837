"""What the dashboard's browser tests share: Debian's Chromium driven by Playwright (its own
browser download is not reachable here), the marks that skip them with the reason where
either is missing, a dashboard whose clock starts at real time (the browser keeps real time
for its cookies), and screenshots kept as test artifacts under tmp/artifacts/ (not
committed)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.clock import FakeClock
from tests.support.dashboard import Dashboard, start_dashboard

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tmp" / "artifacts"

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # the dev extra not installed
    async_playwright = expect = None  # type: ignore[assignment]

# A browser test module sets `pytestmark = BROWSER`.
BROWSER = [
    pytest.mark.browser,
    pytest.mark.skipif(async_playwright is None, reason="playwright is not installed (pip install -e '.[dev]')"),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Chromium is not installed: apt-get install -y chromium chromium-driver"
    ),
]


@asynccontextmanager
async def real_time_dashboard(path: str) -> AsyncIterator[Dashboard]:
    started = await start_dashboard(path, FakeClock(time.time()))
    try:
        yield started
    finally:
        await started.close()


@asynccontextmanager
async def chromium_page(width: int = 1024, height: int = 800, **context: Any) -> AsyncIterator[Any]:
    """A fresh page in a fresh headless Chromium (its own cookies); `context`: more options of
    its browser context (java_script_enabled=False...)."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            opened = await browser.new_context(viewport={"width": width, "height": height}, **context)
            yield await opened.new_page()
        finally:
            await browser.close()


async def shot(page: Any, name: str) -> Path:
    """Keep a screenshot of the whole page as a test artifact; returns its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
