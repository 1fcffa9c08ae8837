"""What the team did not pay this month: answers from the prompt cache, and the relaxed lanes.

Cache savings are what the cached answers would have cost: for each, the charge of the call that
made the image it reused (the store reads it from the ledger). Flex/Batch savings are the
Standard price of what ran on those lanes minus what it was charged, each model at its own
discount (bot.money.pricing). Both are exact, in micros.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.catalog import Catalog
from bot.money import pricing
from bot.money.amounts import from_micros, to_micros
from bot.money.budgets import Period, period_start
from bot.store.ports import Store
from bot.types import InvalidRequest, Lane

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonthSavings:
    cache_micros: int  # what the cache hits would have cost
    relaxed_micros: int  # Standard price minus the Flex and Batch charges


class SavingsDesk:
    def __init__(self, store: Store, catalog: Catalog, clock: Callable[[], float]) -> None:
        self._store, self._catalog, self._clock = store, catalog, clock

    async def this_month(self, team: str) -> MonthSavings:
        since = period_start(Period.MONTH, self._clock())
        cache = await self._store.cache_savings(team, since)
        relaxed = 0
        for model_alias, lane, charged_micros in await self._store.relaxed_charges(team, since):
            try:
                model = self._catalog.resolve(model_alias)
            except InvalidRequest:  # a model no longer in the catalog: its discount is unknown
                log.warning("savings: model %s is not in the catalog; its %s savings are left out", model_alias, lane)
                continue
            charged = from_micros(charged_micros)
            relaxed += to_micros(pricing.at_standard(model, Lane(lane), charged)) - charged_micros
        return MonthSavings(cache_micros=cache, relaxed_micros=relaxed)
