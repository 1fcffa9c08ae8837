"""The dashboard shows approved overages ([Ask a moderator]): a line on the overview, and the
charge as its own `overage` row in the ledger naming the moderator who approved it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.money.admission import Admission, Charge
from bot.money.quotas import QuotaLimits
from bot.sign_in import Role
from bot.store.ports import final_delivery_key
from bot.types import NewDelivery
from tests.support.clock import FakeClock
from tests.support.dashboard import start_dashboard
from tests.support.jobs import new_job, spec
from tests.support.store_contract import output_image, settle

START = 1_800_000_000.0 - 1_800_000_000.0 % 86400 + 3600


@pytest.fixture
async def dashboard(tmp_path):
    started = await start_dashboard(str(tmp_path / "web.db"), FakeClock(START))
    yield started
    await started.close()


async def overage(store, cost: int, approved_by: str) -> int:
    """One job run as an approved overage, charged `cost`."""
    job = replace(new_job(prompt="over"), spec=replace(spec("over"), approved_by=approved_by))
    admission = Admission(cost, "test-prices", QuotaLimits(None, None, None), approved_by=approved_by)
    await store.submit(job, [], admission)
    leased = await store.lease("w", 60)
    await store.complete(
        leased.id,
        leased.worker_id,
        leased.attempt,
        output_image(),
        {},
        NewDelivery(final_delivery_key(leased.id), "result", {}),
        Charge(cost, None, "succeeded"),
    )
    return leased.id


async def page(browser, dashboard, path: str) -> str:
    async with browser.get(dashboard.link("T1", "M1", Role.MODERATOR)) as r:
        assert r.status == 200
    async with browser.get(dashboard.base + path) as r:
        assert r.status == 200
        return await r.text()


async def test_the_overview_and_the_ledger_show_the_overage_apart(dashboard, browser):
    await settle(dashboard.store, "T1", "pro", 134_000, "within")
    job = await overage(dashboard.store, 240_000, "UMOD")
    overview = await page(browser, dashboard, "/dashboard/")
    assert 'data-overage-micros="240000"' in overview and "Approved overage this month: $0.24" in overview
    ledger = await page(browser, dashboard, "/dashboard/ledger")
    row = ledger[ledger.index(f'data-job="{job}"') :]
    row = row[: row.index("</tr>")]
    assert "<td>overage (approved by UMOD)</td>" in row, row


async def test_no_overage_no_line(dashboard, browser):
    await settle(dashboard.store, "T1", "pro", 134_000, "within")
    assert "overage" not in (await page(browser, dashboard, "/dashboard/")).lower()
