"""The router's throttles alone: adaptive concurrency and the per-minute rate limiter
(fallback chains and the circuit breaker against the fake Gemini: tests/integration)."""

from __future__ import annotations

import asyncio

import pytest

from bot.providers.router import AdaptiveConcurrency, LocalRateLimiter
from tests.support.clock import FakeClock


async def test_adaptive_concurrency_caps_calls_in_flight():
    gate = AdaptiveConcurrency(2)
    entered = []

    async def call(n):
        async with gate:
            entered.append(n)
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(call(n)) for n in range(5)]
    await asyncio.sleep(0.01)
    assert len(entered) == 2 and gate.in_flight == 2
    await asyncio.gather(*tasks)
    assert len(entered) == 5


async def test_the_rate_limiter_holds_calls_past_the_per_minute_limit():
    clock = FakeClock()
    limiter = LocalRateLimiter({"gemini": 2}, clock=clock)
    await limiter.acquire("gemini:gemini-3-pro-image")
    await limiter.acquire("gemini:gemini-3-pro-image")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limiter.acquire("gemini:gemini-3-pro-image"), 0.2)
    await limiter.acquire("other:model")  # no limit configured for that route
    clock.advance(61)
    await asyncio.wait_for(limiter.acquire("gemini:gemini-3-pro-image"), 0.2)
