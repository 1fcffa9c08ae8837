"""The dashboard shows approved overages ([Ask a moderator]): a line on the overview, and the
charge as its own `overage` row in the ledger naming the moderator who approved it."""

from __future__ import annotations

import pytest

from bot.sign_in import Role
from tests.support.clock import FakeClock
from tests.support.dashboard import start_dashboard
from tests.support.store_contract import settle

START = 1_800_000_000.0 - 1_800_000_000.0 % 86400 + 3600


@pytest.fixture
async def dashboard(tmp_path):
    started = await start_dashboard(str(tmp_path / "web.db"), FakeClock(START))
    yield started
    await started.close()


async def page(browser, dashboard, path: str) -> str:
    async with browser.get(dashboard.link("T1", "M1", Role.MODERATOR)) as r:
        assert r.status == 200
    async with browser.get(dashboard.base + path) as r:
        assert r.status == 200
        return await r.text()


async def test_the_overview_and_the_ledger_show_the_overage_apart(dashboard, browser):
    await settle(dashboard.store, "T1", "pro", 134_000, "within")
    job = await settle(dashboard.store, "T1", "pro", 240_000, "over", approved_by="UMOD")
    overview = await page(browser, dashboard, "/dashboard/")
    assert 'data-overage-micros="240000"' in overview and "Approved overage this month: $0.24" in overview
    ledger = await page(browser, dashboard, "/dashboard/ledger")
    row = ledger[ledger.index(f'data-job="{job}"') :]
    row = row[: row.index("</tr>")]
    assert "<td>overage (approved by UMOD)</td>" in row, row


async def test_no_overage_no_line(dashboard, browser):
    await settle(dashboard.store, "T1", "pro", 134_000, "within")
    assert "overage" not in (await page(browser, dashboard, "/dashboard/")).lower()
