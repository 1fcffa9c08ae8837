"""What the dashboard's browser tests share: Playwright driving Debian's Chromium
(/usr/bin/chromium; Playwright's own browser download is not reachable here), the `browser`
mark that skips them with the reason where either is missing, a page fixture, and `shot`,
which keeps each page's screenshot under tmp/artifacts/ (not committed).

A test module sets `pytestmark = BROWSER_TESTS` and opens its pages with `chromium_page()`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "tmp" / "artifacts"

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # the dev extra not installed
    async_playwright = expect = None  # type: ignore[assignment]

BROWSER_TESTS = [
    pytest.mark.browser,
    pytest.mark.skipif(async_playwright is None, reason="playwright is not installed (pip install -e '.[dev]')"),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Chromium is not installed: apt-get install -y chromium chromium-driver"
    ),
]

__all__ = ["ARTIFACTS", "BROWSER_TESTS", "CHROMIUM", "chromium_page", "expect", "shot"]


@asynccontextmanager
async def chromium_page(width: int = 1024, height: int = 800, **context: Any) -> AsyncIterator[Any]:
    """A page in a fresh headless Chromium (its own cookies), closed after; `context`: more
    options of its browser context (java_script_enabled=False...)."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = await browser.new_context(viewport={"width": width, "height": height}, **context)
        try:
            yield await context.new_page()
        finally:
            await browser.close()


async def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
