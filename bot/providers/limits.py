"""How fast a route may be called, and when to stop calling it.

- Rate limiters per "route:model" key: `LocalRateLimiter` for one process,
  `SharedRateLimiter` counted in the database across processes and machines
  (Gemini quota belongs to the Google project).
- `AdaptiveConcurrency`: calls in flight per route, halved on a 429, grown by
  one per success.
- `CircuitBreaker`: after repeated failures a route is skipped for a
  cool-down, then tried once.

`bot.providers.router` puts these on each route.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)
# A minute, plus a margin: a call sent just inside our window may reach Google a
# little later, and must still land inside Google's.
WINDOW = 60.5


class RateLimiter(Protocol):
    limits: dict[str, int]  # calls per minute, by "route" or "route:model"

    async def acquire(self, key: str) -> None:
        """Wait until one more call under `key` ("route:model") fits the configured rate."""


def limit_for(limits: dict[str, int], key: str) -> int | None:
    """The most specific limit for "route:model": its own, else its route's."""
    return limits.get(key, limits.get(key.split(":", 1)[0]))


class RateSlots(Protocol):
    async def take_rate_slot(self, key: str, limit: int, window: float) -> float: ...


class SharedRateLimiter:
    """Calls per minute per key, counted in the database, so every worker
    process (on every machine) shares one limit: Gemini's quota belongs to
    the Google project, not to a process or a key."""

    def __init__(self, slots: RateSlots, per_minute: dict[str, int]) -> None:
        self.limits = per_minute
        self._slots = slots
        self._locks: dict[str, asyncio.Lock] = {}

    async def acquire(self, key: str) -> None:
        limit = limit_for(self.limits, key)
        if not limit:
            return
        # This process's callers of one key ask in turn (one round trip at a time); other keys never wait.
        async with self._locks.setdefault(key, asyncio.Lock()):
            # The slots are rows shared with other processes: nothing here is told when one frees, so poll.
            while (wait := await self._slots.take_rate_slot(key, limit, WINDOW)) > 0:  # noqa: ASYNC110
                await asyncio.sleep(wait)


class LocalRateLimiter:
    """Calls per minute per key over a sliding window, for one process (no database)."""

    def __init__(self, per_minute: dict[str, int], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = per_minute
        self._clock = clock
        self._sent: dict[str, deque[float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def acquire(self, key: str) -> None:
        limit = limit_for(self.limits, key)
        if not limit:
            return
        sent = self._sent.setdefault(key, deque())
        # Callers of one key queue in order; other keys never wait behind them.
        async with self._locks.setdefault(key, asyncio.Lock()):
            while True:
                now = self._clock()
                while sent and sent[0] <= now - WINDOW:
                    sent.popleft()
                if len(sent) < limit:
                    sent.append(now)
                    return
                await asyncio.sleep(sent[0] + WINDOW - now)


class AdaptiveConcurrency:
    """How many calls a route may have in flight: halved on a 429, +1 per success."""

    def __init__(self, maximum: int) -> None:
        self.maximum = self.limit = max(1, maximum)
        self.in_flight = 0
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1

    async def __aexit__(self, *exc) -> None:
        async with self._changed:
            self.in_flight -= 1
            self._changed.notify_all()

    def throttled(self) -> None:
        self.limit = max(1, self.limit // 2)

    async def succeeded(self) -> None:
        if self.limit < self.maximum:
            self.limit += 1
            async with self._changed:
                self._changed.notify_all()


@dataclass
class CircuitBreaker:
    threshold: int = 5
    cooldown: float = 60.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if self.clock() - self.opened_at >= self.cooldown:
            self.opened_at = self.clock()  # half-open: one call goes through, the rest wait again
            return True
        return False

    def reopens_in(self) -> float:
        """Seconds until the paused route lets a call through again (0 when it is not paused)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (self.clock() - self.opened_at))

    def record(self, ok: bool) -> None:
        if ok:
            self.failures, self.opened_at = 0, None
            return
        self.failures += 1
        if self.failures >= self.threshold:
            if self.opened_at is None:
                log.warning(
                    "circuit open: %d failures in a row; pausing the route for %.0f s", self.failures, self.cooldown
                )
            self.opened_at = self.clock()
