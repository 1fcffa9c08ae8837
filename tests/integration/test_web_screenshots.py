"""The README's screenshots, made by a test from fake data: a month of a team's spend.

Every run renders them into tmp/artifacts/; with IMAGINE_UPDATE_SCREENSHOTS=1 they are also
written to docs/screenshots/, to be committed (tests/unit/test_docs.py checks the README's
images exist)."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime

import pytest

from bot.money.budgets import Budget, Period, Scope
from bot.sign_in import Role
from bot.types import Lane
from tests.support.browser import BROWSER, ROOT, chromium_page, shot
from tests.support.clock import FakeClock
from tests.support.dashboard import start_dashboard
from tests.support.gallery import render
from tests.support.store_contract import settle

pytestmark = BROWSER

DAY = 86400
LATE_MONTH = datetime(2026, 11, 28, 16, 0, tzinfo=UTC).timestamp()
SCREENSHOTS = ROOT / "docs" / "screenshots"
PEOPLE = ["U04AMARA", "U07BENJI", "U02CHIOMA", "U09DMITRI"]
CHANNELS = ["C01DESIGN", "C02MARKETING", "C03RANDOM"]


def keep(path, name: str) -> None:
    if os.environ.get("IMAGINE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"{name}.png")


@pytest.fixture
async def dashboard(tmp_path):
    # A fixed late-month day: the screenshots show the same month whenever they are made.
    started = await start_dashboard(str(tmp_path / "shots.db"), FakeClock(LATE_MONTH))
    yield started
    await started.close()


async def a_month_of_spend(dashboard) -> None:
    """A team's month: Pro and Flash most days, more on weekdays, four people."""
    store, clock = dashboard.store, dashboard.clock
    now = clock.now
    await store.set_budget(Budget("T1", Scope.TEAM, "", 60_000_000, Period.MONTH, soft_threshold=0.8), "mod")
    await store.set_budget(Budget("T1", Scope.USER, "U04AMARA", 15_000_000, Period.MONTH, soft_threshold=0.75), "mod")
    for back in range(29, -1, -1):
        clock.now = now - back * DAY
        busy = 1 + (back * 7) % 5
        for n in range(busy):
            who = PEOPLE[(back + n) % len(PEOPLE)]
            model, cost = ("pro", 134_000) if (back + n) % 3 else ("flash", 39_000)
            where = CHANNELS[(back * 3 + n) % len(CHANNELS)] if n else CHANNELS[0]
            relaxed = (back + n) % 4 == 0  # some on the Flex lane, at half the price
            lane, paid = (Lane.FLEX, cost // 2) if relaxed else (Lane.STANDARD, cost)
            await settle(store, "T1", model, paid, f"sketch {back}-{n}", user=who, channel=where, lane=lane)
    clock.now = now


async def test_the_overview_screenshot(dashboard):
    await a_month_of_spend(dashboard)
    async with chromium_page(1200, 900) as page:
        await page.goto(dashboard.link(user="U04AMARA", role=Role.MODERATOR))
        assert await page.locator("#daily-chart g.day rect").count() > 30
        keep(await shot(page, "readme-overview"), "overview")


GALLERY = [
    ("a lighthouse on a cliff at dusk", "steelblue", None),
    ("make the light warmer", "darkorange", 0),
    ("now in a storm", "slategray", 1),
    ("a koi pond at dawn", "teal", None),
    ("a red fox in the snow", "firebrick", None),
    ("a paper boat on a puddle", "goldenrod", None),
    ("add a rainbow", "mediumpurple", 5),
    ("a cactus in a tea cup", "seagreen", None),
]


async def test_the_gallery_screenshot(dashboard):
    made: list[int] = []
    for n, (prompt, color, parent) in enumerate(GALLERY):
        made.append(
            await render(
                dashboard.store,
                prompt,
                134_000 if n % 3 else 39_000,
                parent=None if parent is None else made[parent],
                user=PEOPLE[n % len(PEOPLE)],
                color=color,
                model="pro" if n % 3 else "flash",
                width=320,
                height=240,
            )
        )
    async with chromium_page(1200, 900) as page:
        await page.goto(dashboard.link(user="U04AMARA", role=Role.MODERATOR))
        await page.get_by_role("link", name="Gallery").click()
        tiles = page.locator("li.tile")
        assert await tiles.count() == len(GALLERY)
        keep(await shot(page, "readme-gallery"), "gallery")
