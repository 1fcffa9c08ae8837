"""The Store contract for the two resilience patterns: the stale answer of last
resort (Store.stale_result) and a hedged attempt's second charge (Store.settle_hedge)."""

from __future__ import annotations

from dataclasses import replace

from bot.money.admission import Charge
from bot.store.ports import final_delivery_key
from bot.types import CheckedImage, NewDelivery, Submitted, Usage
from tests.integration.store.test_store_money import EST, admission, entries, team_budget, team_status
from tests.support.images import png_bytes
from tests.support.jobs import new_job

PNG = png_bytes(color="blue")


def cacheable(team: str = "T1", prompt: str = "a koi pond"):
    return replace(new_job(team, prompt=prompt), cache_key=f"cache:{prompt}")


def image() -> CheckedImage:
    return CheckedImage(PNG, "image/png", 8, 8, "0" * 64)


async def finished(store, job, result: dict, cost: int = EST) -> int:
    return await store.complete(
        job.id,
        job.worker_id,
        job.attempt,
        image(),
        result,
        NewDelivery(final_delivery_key(job.id), "result", result),
        Charge(cost, Usage(image_tokens=1120), "succeeded"),
    )


async def made(store, result: dict, *, team: str = "T1") -> int:
    """A succeeded job for the koi pond request, its result as given."""
    submitted = await store.submit(cacheable(team), [], admission())
    await finished(store, await store.lease("w", 60), result)
    return submitted.job_id


async def test_the_stale_result_is_the_teams_own_latest_image_however_old(store, clock):
    first = await made(store, {"model": "pro", "fallback_from": None})
    clock.advance(90 * 86400)  # far past any cache TTL
    earlier = await store.stale_result("T1", "cache:a koi pond")
    assert earlier is not None and earlier.job_id == first
    assert earlier.image.data == PNG and earlier.result["model"] == "pro"
    assert await store.stale_result("T2", "cache:a koi pond") is None  # never another team's
    assert await store.stale_result("T1", "cache:another prompt") is None


async def test_no_stale_result_from_a_fallback_or_from_an_answer_itself_served_stale(store):
    await made(store, {"model": "flash", "fallback_from": "pro (overloaded)"})
    assert await store.stale_result("T1", "cache:a koi pond") is None
    await made(store, {"model": "pro", "stale": True, "stale_from_job": 1})
    assert await store.stale_result("T1", "cache:a koi pond") is None


async def test_an_answer_served_stale_never_feeds_the_fresh_cache(store):
    await made(store, {"model": "pro", "stale": True})
    again = await store.submit(cacheable(), [], admission(), cache_ttl=3600)
    assert isinstance(again, Submitted) and not again.cached


async def test_a_cached_copy_of_a_hedged_answer_carries_no_hedge_cost(store):
    await made(
        store,
        {
            "model": "pro",
            "fallback_from": None,
            "cost_usd": "0.2",
            "hedge": {"route": "gemini", "model": "flash", "cost_usd": "0.07"},
        },
    )
    again = await store.submit(cacheable(), [], admission(), cache_ttl=3600)
    assert isinstance(again, Submitted) and again.cached
    copy = (await store.get_job(again.job_id)).result
    assert copy["cost_usd"] == "0" and "hedge" not in copy


async def test_completing_with_no_charge_releases_the_whole_hold(store):
    await store.set_budget(team_budget(1_000_000), "mod")
    submitted = await store.submit(cacheable(), [], admission())
    job = await store.lease("w", 60)
    result = {"cost_usd": "0", "stale": True}
    image_id = await store.complete(
        job.id,
        job.worker_id,
        job.attempt,
        image(),
        result,
        NewDelivery(final_delivery_key(job.id), "result", result),
        None,
    )
    assert image_id is not None
    assert await entries(store, submitted.job_id) == [("reservation", EST, "held"), ("release", EST, "released")]
    status = await team_status(store)
    assert (status.spent_micros, status.reserved_micros) == (0, 0)
    [delivery] = [d for d in await store.claim_deliveries(["cli"], 10, 60) if d.kind == "result"]
    assert delivery.payload["stale"] and delivery.payload["image_id"] == image_id


async def test_a_hedged_attempt_settles_both_calls_and_releases_only_the_rest(store):
    await store.set_budget(team_budget(1_000_000), "mod")
    hold = EST + 67_000  # Pro and the Flash that hedges it, both held
    submitted = await store.submit(new_job(), [], admission(estimate=hold))
    job = await store.lease("w", 60)
    hedge = Charge(67_000, Usage(image_tokens=1120), "succeeded")
    await store.settle_hedge(job.id, job.attempt, hedge)
    await store.settle_hedge(job.id, job.attempt, hedge)  # reported twice, charged once
    await finished(store, job, {}, cost=134_000)
    assert await entries(store, submitted.job_id) == [
        ("reservation", hold, "held"),
        ("settlement", 67_000, "succeeded"),
        ("settlement", 134_000, "succeeded"),
        ("release", hold - 134_000 - 67_000, "released"),
    ]
    settlements = [r for r in await store.ledger() if r["entry"] == "settlement"]
    assert sorted((r["attempt"], r["hedge"]) for r in settlements) == [(1, 0), (1, 1)]
    status = await team_status(store)
    assert (status.spent_micros, status.reserved_micros) == (134_000 + 67_000, 0)


async def test_a_hedge_charge_stands_when_the_attempt_then_fails(store):
    submitted = await store.submit(new_job(max_attempts=1), [], admission())
    job = await store.lease("w", 60)
    await store.settle_hedge(job.id, job.attempt, Charge(45_000, None, "failed"))
    await store.fail(
        job.id,
        job.worker_id,
        job.attempt,
        error_class="overloaded",
        detail="x",
        retryable=True,
        final_state=None,
        retry_at=None,
        delivery=NewDelivery(final_delivery_key(job.id), "failure", {}),
    )
    assert await entries(store, submitted.job_id) == [
        ("reservation", EST, "held"),
        ("settlement", 45_000, "failed"),
        ("release", EST - 45_000, "released"),
    ]
