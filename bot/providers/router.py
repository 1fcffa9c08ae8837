"""Routes: which provider serves a model, how fast we may call it, and where to
go when it is down.

- A rate limiter per route and model, shared by every worker slot, adaptive
  concurrency and a circuit breaker per route (all in `bot.providers.limits`).
- A fallback chain per team (spec.fallbacks, e.g. ("flash",) or
  ("openrouter:pro",)), tried when the route is overloaded or rate-limited;
  the result says where it came from. Blocked, auth and bad requests never
  fall back: another model must not be used to get around a refusal.
  Configuration errors (billing not enabled, bad credentials) neither fall
  back nor count against the route's concurrency or circuit: every model of
  the project would answer the same, and no wait cures them. A "no image"
  answer goes up for the worker's one retry on the same model.
- Hedging (spec.hedge_after_s, off by default): when no image has come after
  that many seconds, the next route in the chain is asked too, and the first
  image wins; the other call is cancelled, and the result carries it
  (`GenerationResult.hedge`) so the worker can settle it. A policy refusal
  from either call ends the attempt; any other error ends it only when no
  other call is still working.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.catalog import Catalog
from bot.providers.base import ImageProvider
from bot.providers.errors import BlockedError, OverloadedError, ProviderError, QuotaError
from bot.providers.limits import AdaptiveConcurrency, CircuitBreaker, LocalRateLimiter, RateLimiter, limit_for

# Still importable from here, where they lived before limits.py.
from bot.providers.limits import SharedRateLimiter as SharedRateLimiter
from bot.types import GenerationResult, GenerationSpec, HedgeCall, InputImage, InvalidRequest, Lane

log = logging.getLogger(__name__)


class RoutableProvider(ImageProvider, Protocol):
    """What a route holds: a provider that also lists its models (for `doctor`'s check of the key)."""

    async def list_models(self) -> list[str]: ...


@dataclass
class Route:
    name: str
    provider: RoutableProvider
    serves: frozenset[str] | None = None  # model aliases; None = every model in the catalog
    concurrency: AdaptiveConcurrency = field(default_factory=lambda: AdaptiveConcurrency(16))
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)


class RoutedProvider:
    name = "router"

    def __init__(self, routes: list[Route], catalog: Catalog, limiter: RateLimiter | None = None) -> None:
        if not routes:
            raise ValueError("at least one route is needed")
        self.routes = {r.name: r for r in routes}
        self._default = routes[0].name
        self._catalog = catalog
        self.limiter: RateLimiter = limiter or LocalRateLimiter({})

    def chain(self, spec: GenerationSpec) -> list[tuple[Route, GenerationSpec]]:
        """The primary (route, spec) and its fallbacks, in order; unknown entries are skipped."""
        out = []
        for entry in (spec.model_alias, *spec.fallbacks):
            route_name, _, alias = entry.rpartition(":")
            route = self.routes.get(route_name or self._primary_for(alias))
            if route is None or (route.serves is not None and alias not in route.serves):
                continue
            if spec.lane in (Lane.FLEX, Lane.PRIORITY) and not getattr(route.provider, "service_tiers", False):
                continue  # a route without service tiers would serve it at Standard's full price
            try:
                model = self._catalog.resolve(alias)
            except InvalidRequest:
                log.warning("fallback %r names no known model; skipped", entry)
                continue
            if spec.size not in model.sizes or spec.aspect_ratio not in model.aspect_ratios:
                continue  # this fallback can't make the image asked for
            out.append(
                (
                    route,
                    dataclasses.replace(
                        spec,
                        model_alias=model.alias,
                        model_id=model.model_id,
                        send_image_size=model.send_image_size,
                        fallbacks=(),
                    ),
                )
            )
        return out

    def _primary_for(self, alias: str) -> str:
        for route in self.routes.values():
            if route.serves is None or alias in route.serves:
                return route.name
        return self._default

    async def generate(self, spec: GenerationSpec, inputs: Sequence[InputImage]) -> GenerationResult:
        # Hedging sends a second call at the list price: only ever on the Standard lane.
        if spec.hedge_after_s is not None and spec.lane is Lane.STANDARD:
            return await Hedged(self, spec, inputs, spec.hedge_after_s).run()
        first_error: ProviderError | None = None
        called, reopens = False, []
        for route, candidate in self.chain(spec):
            if not route.breaker.allow():
                first_error = first_error or paused(route)
                reopens.append(route.breaker.reopens_in())
                continue
            called = True
            try:
                result = await self.call(route, candidate, inputs)
            except (QuotaError, OverloadedError) as exc:
                first_error = first_error or exc
                reopens.append(route.breaker.reopens_in())
                continue
            fell_back = None if first_error is None else f"{spec.model_alias} ({first_error.kind})"
            return dataclasses.replace(result, fallback_from=fell_back)
        if first_error is None:
            raise ProviderError(f"no configured route serves the model {spec.model_alias}")
        # Retry when a route of the chain reopens or the server's delay has passed, whichever
        # is later: sooner would only meet the paused route again (or be refused again).
        if reopens and min(reopens) > 0:
            first_error.retry_after = max(first_error.retry_after or 0.0, min(reopens))
        first_error.called = called
        raise first_error

    async def call(self, route: Route, spec: GenerationSpec, inputs: Sequence[InputImage]) -> GenerationResult:
        """One call on one route, counted by its circuit breaker and concurrency."""
        await self.limiter.acquire(f"{route.name}:{spec.model_id}")
        try:
            result = await self._timed_call(route, spec, inputs)
        except ProviderError as exc:
            exc.route, exc.model_alias = route.name, spec.model_alias
            # Flex shedding its load says nothing about the route's health.
            if isinstance(exc, QuotaError | OverloadedError) and spec.lane is not Lane.FLEX:
                route.breaker.record(False)
                if isinstance(exc, QuotaError):
                    route.concurrency.throttled()
                log.warning("route %s (%s) failed: %s", route.name, spec.model_alias, exc)
            raise
        route.breaker.record(True)
        await route.concurrency.succeeded()
        return dataclasses.replace(result, route=route.name, model_alias=spec.model_alias)

    @staticmethod
    async def _timed_call(route: Route, spec: GenerationSpec, inputs: Sequence[InputImage]) -> GenerationResult:
        """The route's call, timed on its own: waiting for the rate limiter or a
        concurrency slot is queueing, not the provider's latency."""
        async with route.concurrency:
            started = time.monotonic()
            try:
                result = await route.provider.generate(spec, inputs)
            except ProviderError as exc:
                exc.call_seconds = time.monotonic() - started
                raise
        return dataclasses.replace(result, call_seconds=time.monotonic() - started)

    def requests_per_minute(self, route: str) -> int | None:
        return limit_for(self.limiter.limits, f"{route}:")

    async def list_models(self) -> list[str]:
        return await self.routes[self._default].provider.list_models()

    async def close(self) -> None:
        for route in self.routes.values():
            await route.provider.close()


def paused(route: Route) -> OverloadedError:
    """A route skipped while its breaker is open: no call was made, so no attempt is used."""
    error = OverloadedError(
        f"route {route.name} is paused after repeated failures", retry_after=route.breaker.reopens_in()
    )
    error.called = False
    return error


@dataclass(eq=False)
class _Call:
    task: asyncio.Task[GenerationResult]
    route: Route
    spec: GenerationSpec
    outcome: GenerationResult | ProviderError | None = None  # once it finished


class Hedged:
    """One hedged attempt: the chain in turn, as RoutedProvider.generate goes
    through it, except that once `hedge_after_s` has passed with no image, the
    next route is asked too (once), so two calls may be in flight.

    The first image wins and the other call is cancelled. The winner's result
    carries the other call of the pair (`HedgeCall`): its answer when it had one
    (an image that came at the same moment, or an error), else None, cancelled
    unanswered. Cancelling closes the connection, but a model already rendering
    may finish and Google may bill that call; it reported no usage to us, so
    nothing can be settled for it, and the docs say so."""

    def __init__(
        self, router: RoutedProvider, spec: GenerationSpec, inputs: Sequence[InputImage], hedge_after_s: float
    ) -> None:
        self._router = router
        self._spec = spec
        self._hedge_after_s = hedge_after_s  # the spec's own, known to be set
        self._inputs = inputs
        self._waiting = deque(router.chain(spec))
        self._running: list[_Call] = []
        self._first_error: ProviderError | None = None
        # The call in flight when the hedge was sent, and the hedge itself.
        self._pair: tuple[_Call, _Call] | None = None
        self._hedge_after: float | None = None
        # The first call made, and why the chain's primary was skipped before it (an open circuit).
        self._first: _Call | None = None
        self._skipped: ProviderError | None = None
        # A call that failed for good (not a passing overload) while another was still running.
        self._ended_by: tuple[ProviderError, _Call] | None = None

    async def run(self) -> GenerationResult:
        started = time.monotonic()
        try:
            self._launch()
            while self._running:
                hedge_at = started + self._hedge_after_s if self._hedge_after is None else None
                timeout = None if hedge_at is None else max(0.0, hedge_at - time.monotonic())
                done, _ = await asyncio.wait(
                    [c.task for c in self._running], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    self._hedge(time.monotonic() - started)
                    continue
                # In launch order: when both answer at once, the earlier call wins.
                for call in [c for c in self._running if c.task in done]:
                    self._running.remove(call)
                    result = self._settled(call)
                    if result is not None:
                        return await self._won(call, result)
                if not self._running:
                    if self._ended_by is not None:  # nothing else answered: its error ends the attempt
                        raise self._with_hedge(*self._ended_by)
                    self._launch()
        finally:
            for call in self._running:
                call.task.cancel()
        if self._first_error is None:
            raise ProviderError(f"no configured route serves the model {self._spec.model_alias}")
        # The error raised is billed as the attempt's own; the pair's other call is settled beside it.
        raised_by = next((c for c in self._pair or () if c.outcome is self._first_error), None)
        raise self._with_hedge(self._first_error, raised_by)

    def _launch(self) -> _Call | None:
        """Start the next route in the chain whose circuit is closed."""
        while self._waiting:
            route, spec = self._waiting.popleft()
            if not route.breaker.allow():
                self._first_error = self._first_error or paused(route)
                self._skipped = self._skipped or (self._first_error if self._first is None else None)
                continue
            call = _Call(asyncio.create_task(self._router.call(route, spec, self._inputs)), route, spec)
            self._running.append(call)
            self._first = self._first or call
            return call
        return None

    def _hedge(self, after: float) -> None:
        self._hedge_after = after
        primary = self._running[0]
        hedge = self._launch()
        if hedge is not None:
            log.info(
                "no image from %s (%s) after %.1f s: hedging with %s (%s)",
                primary.route.name,
                primary.spec.model_alias,
                after,
                hedge.route.name,
                hedge.spec.model_alias,
            )
            self._pair = (primary, hedge)

    def _settled(self, call: _Call) -> GenerationResult | None:
        """A finished call's image, or None when it failed in a way the chain goes past."""
        try:
            call.outcome = result = call.task.result()
        except (QuotaError, OverloadedError) as exc:
            call.outcome = exc
            self._first_error = self._first_error or exc
            return None
        except BlockedError as exc:  # a policy refusal ends the attempt: no route may get around it
            call.outcome = exc
            raise self._with_hedge(exc, call) from None
        except ProviderError as exc:
            call.outcome = exc
            if not self._running:
                raise self._with_hedge(exc, call) from None
            # Another call is still working (a healthy primary, say): this one's error (a gateway's
            # 401, an answer without an image) is only its own outcome, settled beside the winner.
            self._ended_by = self._ended_by or (exc, call)
            return None
        return result

    async def _won(self, winner: _Call, result: GenerationResult) -> GenerationResult:
        for call in self._running:
            call.task.cancel()
        # A call that finished before its cancel took effect keeps its answer.
        await asyncio.gather(*(c.task for c in self._running), return_exceptions=True)
        for call in self._running:
            if call.task.cancelled():
                continue
            error = call.task.exception()
            if error is None or isinstance(error, ProviderError):
                call.outcome = error or call.task.result()
        self._running.clear()
        fell_back = None
        if winner is not self._first or self._skipped is not None:  # not the primary's own image
            assert self._first is not None  # the winner was launched, so a first call was
            failed = self._skipped or self._first.outcome
            why = failed.kind if isinstance(failed, ProviderError) else f"no answer after {self._hedge_after_s:g} s"
            fell_back = f"{self._spec.model_alias} ({why})"
        return dataclasses.replace(result, fallback_from=fell_back, hedge=self._other_call(winner))

    def _with_hedge(self, exc: ProviderError, ended_by: _Call | None) -> ProviderError:
        exc.hedge = self._other_call(ended_by)
        # A paused primary's error may end an attempt whose fallbacks were really called:
        # only an attempt that called nothing is given back.
        exc.called = self._first is not None
        return exc

    def _other_call(self, decided_by: _Call | None) -> HedgeCall | None:
        """The call of the hedged pair that did not decide the attempt (make its image or
        raise its error), as it ended."""
        if self._pair is None:
            return None
        primary, hedge = self._pair
        assert self._hedge_after is not None  # set by _hedge along with the pair
        other = primary if decided_by is hedge else hedge
        return HedgeCall(
            route=other.route.name,
            model_alias=other.spec.model_alias,
            after_s=self._hedge_after,
            won=decided_by is hedge,
            answer=other.outcome,
        )
