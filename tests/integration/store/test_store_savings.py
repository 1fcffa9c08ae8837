"""The Store contract for the overview's savings: what cache hits would have cost, and the
charges on the relaxed lanes, per model and lane."""

from __future__ import annotations

from dataclasses import replace

from bot.money.admission import Admission
from bot.money.quotas import QuotaLimits
from bot.types import Lane
from tests.support.jobs import new_job
from tests.support.store_contract import settle

NO_QUOTAS = QuotaLimits(None, None, None)


async def hit(store, team: str, prompt: str) -> int:
    """A request answered from the cache (the same cache key as `settle(..., prompt)`)."""
    job = replace(new_job(team, prompt=prompt), cache_key=f"cache:{prompt}")
    submitted = await store.submit(job, [], Admission(1, "test-prices", NO_QUOTAS), cache_ttl=3600)
    assert submitted.cached
    return submitted.job_id


async def test_cache_savings_are_what_the_reused_images_cost(store, clock):
    await settle(store, "T1", "pro", 134_000, "koi")
    await settle(store, "T1", "flash", 39_000, "fox")
    await settle(store, "T2", "pro", 999_000, "koi")  # another team's image and hits
    await hit(store, "T2", "koi")
    since = clock.now
    clock.advance(1)
    assert await store.cache_savings("T1", since) == 0  # charged jobs are not savings
    await hit(store, "T1", "koi")
    await hit(store, "T1", "koi")
    await hit(store, "T1", "fox")
    assert await store.cache_savings("T1", since) == 2 * 134_000 + 39_000
    assert await store.cache_savings("T1", clock.now + 1) == 0
    assert await store.cache_savings("T3", 0) == 0


async def test_relaxed_charges_sum_flex_and_batch_settlements_per_model_and_lane(store, clock):
    since = clock.now
    await settle(store, "T1", "pro", 67_000, "a", lane=Lane.FLEX)
    await settle(store, "T1", "pro", 33_000, "b", lane=Lane.FLEX)
    await settle(store, "T1", "flash", 19_500, "c", lane=Lane.FLEX)
    await settle(store, "T1", "pro", 134_000, "standard")
    await settle(store, "T1", "pro", 200_000, "priority", lane=Lane.PRIORITY)
    await settle(store, "T2", "pro", 67_000, "other team", lane=Lane.FLEX)
    assert await store.relaxed_charges("T1", since) == [("flash", "flex", 19_500), ("pro", "flex", 100_000)]
    assert await store.relaxed_charges("T1", clock.now + 1) == []
