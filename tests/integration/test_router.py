"""Routes: fallback chains, circuit breaker, concurrency and the shared rate limiter, with the
real Gemini provider against the fake Gemini (the throttles alone: tests/unit/test_router.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from bot.catalog import load_catalog
from bot.providers.errors import BillingNotEnabled, BlockedError, NoImageError, OverloadedError, QuotaError
from bot.providers.gemini import GeminiProvider
from bot.providers.router import (
    AdaptiveConcurrency,
    CircuitBreaker,
    Route,
    RoutedProvider,
)
from tests.fakes.gemini_server import error, finish, free_tier_zero, ok
from tests.support.clock import FakeClock
from tests.support.jobs import spec


def router(fake, **route_kw) -> RoutedProvider:
    provider = GeminiProvider.create(api_key="k", base_url=fake.url, vertexai=False, timeout_seconds=10)
    return RoutedProvider([Route("gemini", provider, **route_kw)], load_catalog())


async def test_an_overloaded_primary_falls_back_and_says_so(fake):
    fake.script(error(503), ok())
    routed = router(fake)
    result = await routed.generate(dataclasses.replace(spec(), fallbacks=("flash",)), [])
    assert [r.model for r in fake.requests] == ["gemini-3-pro-image", "gemini-3.1-flash-image"]
    assert (result.route, result.model_alias, result.fallback_from) == ("gemini", "flash", "pro (overloaded)")
    await routed.close()


async def test_without_a_fallback_the_error_goes_up_for_the_queue_to_retry(fake):
    fake.script(error(429, retry_delay="7s"))
    routed = router(fake)
    with pytest.raises(QuotaError) as caught:
        await routed.generate(spec(), [])
    assert caught.value.retry_after == 7.0
    await routed.close()


async def test_a_blocked_answer_never_falls_back(fake):
    fake.script(finish("IMAGE_SAFETY"), ok())
    routed = router(fake)
    with pytest.raises(BlockedError):
        await routed.generate(dataclasses.replace(spec(), fallbacks=("flash",)), [])
    assert len(fake.requests) == 1
    await routed.close()


async def test_billing_not_enabled_neither_throttles_nor_trips_the_circuit_nor_falls_back(fake):
    # Every Gemini model of the project would answer the same: no billing.
    routed = router(fake, concurrency=AdaptiveConcurrency(8), breaker=CircuitBreaker(threshold=1))
    fake.script(free_tier_zero(), ok())
    with pytest.raises(BillingNotEnabled):
        await routed.generate(dataclasses.replace(spec(), fallbacks=("flash",)), [])
    route = routed.routes["gemini"]
    assert len(fake.requests) == 1
    assert route.concurrency.limit == 8 and route.breaker.failures == 0 and route.breaker.allow()
    await routed.close()


async def test_a_no_image_answer_goes_up_for_its_one_retry_without_a_fallback(fake):
    routed = router(fake, breaker=CircuitBreaker(threshold=1))
    fake.script(finish("MAX_TOKENS"), ok())
    with pytest.raises(NoImageError):
        await routed.generate(dataclasses.replace(spec(), fallbacks=("flash",)), [])
    assert len(fake.requests) == 1 and routed.routes["gemini"].breaker.allow()
    await routed.close()


async def test_the_circuit_opens_after_repeated_failures_and_closes_after_a_cool_down(fake):
    clock = FakeClock()
    routed = router(fake, breaker=CircuitBreaker(threshold=3, cooldown=60, clock=clock))
    fake.script(*[error(503)] * 3)
    for _ in range(3):
        with pytest.raises(OverloadedError):
            await routed.generate(spec(), [])
    with pytest.raises(OverloadedError, match="paused"):
        await routed.generate(spec(), [])
    assert len(fake.requests) == 3  # the open circuit spared Google a fourth call
    clock.advance(61)
    assert (await routed.generate(spec(), [])).route == "gemini"  # half-open trial succeeded
    await routed.close()


async def test_a_429_halves_the_route_concurrency_and_successes_grow_it_back(fake):
    routed = router(fake, concurrency=AdaptiveConcurrency(8))
    fake.script(error(429))
    with pytest.raises(QuotaError):
        await routed.generate(spec(), [])
    route = routed.routes["gemini"]
    assert route.concurrency.limit == 4
    await routed.generate(spec(), [])
    await routed.generate(spec(), [])
    assert route.concurrency.limit == 6


async def test_gemini_overloaded_falls_back_to_the_gateway_route(fake):
    from bot.providers.openai_compat import OpenAICompatProvider
    from tests.fakes.openai_server import FakeGateway

    catalog = load_catalog()
    async with FakeGateway() as gateway:
        gemini = GeminiProvider.create(api_key="k", base_url=fake.url, vertexai=False, timeout_seconds=10)
        openrouter = OpenAICompatProvider.create(
            name="openrouter",
            base_url=gateway.url,
            api_key="gw-key",
            timeout_seconds=10,
            models={"pro": "google/gemini-3-pro-image-preview"},
            gateway=catalog.gateways["openrouter"],
        )
        routed = RoutedProvider(
            [Route("gemini", gemini), Route("openrouter", openrouter, serves=frozenset({"pro"}))], catalog
        )
        fake.script(error(503))
        result = await routed.generate(dataclasses.replace(spec(), fallbacks=("openrouter:pro",)), [])
        assert (result.route, result.model_alias, result.fallback_from) == ("openrouter", "pro", "pro (overloaded)")
        assert result.cost_usd is not None and gateway.requests[0].model == "google/gemini-3-pro-image-preview"
        await routed.close()


async def test_the_shared_rate_limiter_holds_one_limit_across_processes(store_factory, clock):
    from bot.providers.router import SharedRateLimiter

    stores = [await store_factory() for _ in range(2)]
    # Two processes, each with its own limiter, on one database: 3 calls a minute in all.
    a, b = (SharedRateLimiter(store, {"gemini": 3}) for store in stores)
    await a.acquire("gemini:m")
    await b.acquire("gemini:m")
    await a.acquire("gemini:m")
    assert await stores[1].take_rate_slot("gemini:m", 3, 60) == pytest.approx(60)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(b.acquire("gemini:m"), 0.2)
    await b.acquire("gemini:other")  # its own key, its own count
    clock.advance(61)
    await asyncio.wait_for(b.acquire("gemini:m"), 0.2)


async def test_latency_is_the_call_alone_not_the_wait_for_a_rate_limit(fake):
    class SlowLimiter:
        limits = {"gemini": 1}

        async def acquire(self, key: str) -> None:
            await asyncio.sleep(1.5)  # a long queue for the project's quota

    fake.latency = 0.05
    fake.script(ok(), error(503))
    routed = router(fake)
    routed.limiter = SlowLimiter()
    started = time.monotonic()
    result = await routed.generate(spec(), [])
    assert time.monotonic() - started >= 1.5
    assert 0.05 <= result.call_seconds < 1.2  # the wait is not in it, even on a loaded machine
    with pytest.raises(OverloadedError) as failed:
        await routed.generate(spec(), [])
    assert 0.05 <= failed.value.call_seconds < 1.2
    await routed.close()
