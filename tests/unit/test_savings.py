"""This month's savings (bot/savings.py) from the store's sums: Flex and Batch at each model's own
discount, exact in micros, and a model the catalog no longer knows left out."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from bot.catalog import load_catalog
from bot.money.budgets import Period, period_start
from bot.savings import MonthSavings, SavingsDesk
from tests.support.clock import FakeClock


class Sums:
    """The two store reads the savings make, answering fixed sums and recording `since`."""

    def __init__(self, cache: int, relaxed: list[tuple[str, str, int]]) -> None:
        self.cache, self.relaxed = cache, relaxed
        self.asked: list[float] = []

    async def cache_savings(self, team: str, since: float) -> int:
        self.asked.append(since)
        return self.cache

    async def relaxed_charges(self, team: str, since: float) -> list[tuple[str, str, int]]:
        self.asked.append(since)
        return self.relaxed


async def test_relaxed_savings_are_the_standard_price_less_the_charge_per_model_discount():
    catalog = load_catalog()
    # A catalog where Flash's relaxed lanes are 40% off rather than half price.
    flash = dataclasses.replace(catalog.models["flash"], batch_discount=Decimal("0.6"))
    catalog = dataclasses.replace(catalog, models={**catalog.models, "flash": flash})
    clock = FakeClock()
    sums = Sums(
        268_000,
        [("flash", "batch", 60_001), ("pro", "batch", 67_000), ("pro", "flex", 33_333), ("gone", "flex", 5)],
    )
    saved = await SavingsDesk(sums, catalog, clock).this_month("T1")  # type: ignore[arg-type]
    # flash: 60,001 / 0.6 = 100,001.67 -> 100,002, saved 40,001; pro: 100,333 / 0.5 less the charge.
    assert saved == MonthSavings(cache_micros=268_000, relaxed_micros=40_001 + 67_000 + 33_333)
    assert sums.asked == [period_start(Period.MONTH, clock.now)] * 2
