"""The worker: leases jobs, calls the provider, stores the outcome.

N slots run concurrently on one event loop (generation is I/O-bound). Each
job is held by a lease that a heartbeat extends while the provider works;
if this process dies, the lease runs out and another worker takes the job.
Every state change goes through the store together with its outbox row,
so a job is finished, charged and announced once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from bot import images
from bot.money import pricing
from bot.alerts import CallWatch
from bot.catalog import Catalog, ModelInfo
from bot.providers.base import ImageProvider
from bot.providers.errors import (
    AnsweredWithoutImage, BadRequestError, BlockedError, InvalidProviderImage, OverloadedError, ProviderError,
    QuotaError, UnpricedCall,
)
from bot.metrics import Metrics
from bot.money import from_micros, to_micros
from bot.money.admission import Charge
from bot.store.batch_sizing import BATCH_INLINE_BYTES, inline_request_bytes
from bot.store.ports import Store, StoreUnavailable, final_delivery_key
from bot.types import CheckedImage, GenerationResult, HedgeCall, InputImage, Job, JobState, Lane, NewDelivery, Usage
from policies.config import PolicyBook

log = logging.getLogger(__name__)
STORE_WRITE_ATTEMPTS = 6
T = TypeVar("T")
calls_log = logging.getLogger("bot.calls")
# Providers return up to 4K PNGs; anything bigger is not an image we want.
MAX_OUTPUT_BYTES = 64 * 1024 * 1024


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]


def hedge_summary(hedge: HedgeCall, cost: Decimal | None) -> dict:
    """What a result says about its hedged attempt's other call, for the reply."""
    return {"route": hedge.route, "model": hedge.model_alias, "won": hedge.won, "after_s": hedge.after_s,
            "answered": hedge.answer is not None, "cost_usd": None if cost is None else str(cost)}


class Worker:
    def __init__(
        self, store: Store, provider: ImageProvider, catalog: Catalog, *,
        concurrency: int = 4, lease_seconds: float = 120.0, poll_interval: float = 1.0,
        retry_base: float = 2.0, retry_cap: float = 120.0, worker_id: str | None = None,
        clock: Callable[[], float] = time.time, on_delivery: Callable[[], None] | None = None,
        only_job_id: int | None = None, deadline_seconds: float = 900.0, metrics: Metrics | None = None,
        batch_deadline_seconds: float = 3 * 86400.0, watch: CallWatch | None = None,
        batch_lane: bool = False,
        policies: PolicyBook | None = None, flex_slots: int | None = None,
    ) -> None:
        # A Flex call may take 15 minutes: at most this many slots run Flex, so Standard
        # requests always find a slot.
        self._flex_slots = max(1, concurrency // 2) if flex_slots is None else flex_slots
        self._flex_running = 0
        # A Batch runner serves this queue, so a Flex job Google sheds can wait for it.
        self._batch_lane = batch_lane
        self._watch = watch
        self._policies = policies or PolicyBook()
        self._deadline = deadline_seconds
        # Relaxed jobs are answered within hours; their retries get days, not minutes.
        self._batch_deadline = batch_deadline_seconds
        self._metrics = metrics or Metrics()
        self._store = store
        self._provider = provider
        self._catalog = catalog
        self._concurrency = concurrency
        self._lease = lease_seconds
        self._poll = poll_interval
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._clock = clock
        self._on_delivery = on_delivery or (lambda: None)
        self._only_job_id = only_job_id
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Called on submit in this process, so a new job starts without waiting for a poll."""
        self._wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        slots = [asyncio.create_task(self._slot(stop, n)) for n in range(self._concurrency)]
        try:
            await asyncio.gather(*slots)
        finally:
            for slot in slots:
                slot.cancel()

    async def _slot(self, stop: asyncio.Event, n: int) -> None:
        slot_id = f"{self.worker_id}/{n}"
        while not stop.is_set():
            # Reserve a Flex slot before asking, so concurrent slots can never take more than the cap.
            flex = self._flex_running < self._flex_slots
            self._flex_running += flex
            try:
                job = await self._store.lease(slot_id, self._lease, only_job_id=self._only_job_id, flex=flex)
            except StoreUnavailable as exc:
                log.warning("worker %s: store unavailable: %s", slot_id, exc)
                job = None
            if flex and (job is None or job.spec.lane is not Lane.FLEX):
                self._flex_running -= 1
                flex = False
            if job is None:
                await self._idle(stop)
                continue
            try:
                await self._run_leased(job, slot_id)
            finally:
                self._flex_running -= flex

    async def _run_leased(self, job: Job, slot_id: str) -> None:
        self._on_delivery()  # the "started" row
        self._metrics.queue_wait.observe(max(0.0, self._clock() - job.created_at))
        try:
            await self.process(job, slot_id)
        except StoreUnavailable as exc:
            log.warning("job %d: store unavailable mid-job (%s); the job comes back when its lease expires",
                        job.id, exc)
        except Exception:
            # Never let one job take the slot (and the process) down: its
            # lease runs out and the job is retried or dead-lettered.
            log.exception("job %d: worker slot failed; the job will come back when its lease expires",
                          job.id)

    async def _idle(self, stop: asyncio.Event) -> None:
        self._wakeup.clear()
        # Woken by a submit in this process, by the database (PostgreSQL's NOTIFY), or by the poll timeout.
        waiters = [asyncio.ensure_future(self._wakeup.wait()), asyncio.ensure_future(stop.wait()),
                   asyncio.ensure_future(self._store.wait_for_jobs(self._poll))]
        await asyncio.wait(waiters, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()

    async def process(self, job: Job, slot_id: str) -> None:
        # The heartbeat runs until the outcome is stored, not just while the
        # provider works: a slow database must not let the lease lapse.
        heartbeat = asyncio.create_task(self._heartbeat(job, slot_id))
        try:
            await self._process(job, slot_id)
        finally:
            heartbeat.cancel()

    async def _process(self, job: Job, slot_id: str) -> None:
        started = time.monotonic()
        outcome: GenerationResult | ProviderError
        try:
            inputs = await self.inputs(job)
        except ProviderError as exc:
            await self._failed(job, slot_id, exc)
            return
        try:
            outcome = await self._provider.generate(job.spec, inputs)
        except ProviderError as exc:
            outcome = exc
        except StoreUnavailable:
            raise  # the shared rate limiter's database: the lease runs out and the job comes back
        except Exception as exc:  # a bug: keep the trace, retry like any transient failure
            log.exception("job %d: unexpected error in attempt %d", job.id, job.attempt)
            await self._failed(job, slot_id, ProviderError(f"internal error: {exc!r}"), retryable=True)
            return
        await self.finish(job, slot_id, outcome, time.monotonic() - started)

    async def finish(self, job: Job, slot_id: str, outcome: GenerationResult | ProviderError,
                     elapsed: float) -> None:
        """Record one provider call's outcome for a job `slot_id` holds: the
        image (charged, stored, delivered) or the failure (retried or final)."""
        # Latency is the provider's own time when the router measured it; `elapsed` includes queueing.
        latency = outcome.call_seconds if outcome.call_seconds is not None else elapsed
        # A hedged attempt's other call is settled first, so the release that ends the job frees only the rest.
        hedge_cost = await self._settle_hedge(job, outcome.hedge) if outcome.hedge is not None else None
        if isinstance(outcome, ProviderError):
            self._log_call(job, latency, error=outcome)
            # A Flex job Google sheds moves to the Batch lane first: it will be answered, at
            # the same price; the stale image is for when nothing else can answer.
            if self._sheds(job, outcome) and await self._fits_a_batch(job):
                await self._to_batch(job, slot_id, outcome)
                return
            if await self._served_stale(job, slot_id, outcome, elapsed):
                return
            await self._failed(job, slot_id, outcome)
            return
        result = outcome
        try:
            model, cost = self._cost_of(job, result)
        except Exception as exc:  # noqa: BLE001 - whatever the cause, the call ran and must be reviewed
            await self._unpriced(job, slot_id, result, exc)
            return
        try:
            checked = self._check_output(result)
        except ProviderError as exc:
            # The call returned (an unreadable image), so it was billed, by the model and route that ran.
            exc.route = exc.route or result.route
            await self._failed(job, slot_id, exc, billed=cost, usage=result.usage)
            return
        self._log_call(job, latency, usage=result.usage, cost=str(cost), route=result.route)
        outcome = {
            "model": model.alias,
            "model_id": model.model_id,
            "model_version": result.model_version,
            "route": result.route or self._provider.name,
            "fallback_from": result.fallback_from,
            "size": job.spec.size,
            "aspect_ratio": job.spec.aspect_ratio,
            "usage": result.usage.to_json() if result.usage else None,
            "cost_usd": str(cost),
            "elapsed_s": round(elapsed, 3),
            "text": result.text,
            "response_id": result.response_id,
            "lane": job.spec.lane.value,
            "served_lane": (result.served_lane or job.spec.lane).value,
        }
        if result.hedge is not None:
            outcome |= {"cost_usd": str(cost + (hedge_cost or 0)), "hedge": hedge_summary(result.hedge, hedge_cost)}
        image_id = await self._stored(lambda: self._store.complete(
            job.id, slot_id, job.attempt, checked, outcome,
            NewDelivery(final_delivery_key(job.id), "result", outcome),
            Charge(to_micros(cost), result.usage, "succeeded"),
        ), job)
        await self._check_hold(job, to_micros(cost + (hedge_cost or 0)), model.alias, outcome["route"])
        if image_id is None:
            log.warning("job %d: lease lost before completion; the call was charged, another worker owns "
                        "the job now", job.id)
            return
        self._on_delivery()
        log.info("job %d succeeded: model=%s size=%s cost=$%s in %.1fs", job.id,
                 result.model_version, job.spec.size, cost, elapsed)

    def _sheds(self, job: Job, exc: ProviderError) -> bool:
        """Flex is best effort: a 429 or 503 (or no answer in time) on it is Google shedding
        the request, not a failure of the route or the request."""
        return (job.spec.lane is Lane.FLEX and self._batch_lane and exc.retryable
                and isinstance(exc, QuotaError | OverloadedError))

    async def _fits_a_batch(self, job: Job) -> bool:
        """Whether a batch could take the job inline: one too big stays on Flex (which takes it)."""
        try:
            inputs = await self.inputs(job)
        except ProviderError:
            return False  # its failure path says why
        size = inline_request_bytes(sum(len(i.data) for i in inputs), len(inputs), job.spec.prompt)
        return size <= BATCH_INLINE_BYTES

    async def _to_batch(self, job: Job, slot_id: str, exc: ProviderError) -> None:
        """A shed Flex job goes to the Batch lane at the same half price (its hold stands), and
        the user is told; the Batch runner takes it from there. Nothing was billed for the shed call."""
        moved = await self._stored(lambda: self._store.relane(
            job.id, slot_id, job.attempt, Lane.BATCH, NewDelivery(
                f"job:{job.id}:relaned:{job.attempt}", "started",
                {"attempt": job.attempt, "relaned": Lane.BATCH.value, "from": Lane.FLEX.value,
                 "error_class": exc.kind})), job)
        if not moved:
            log.warning("job %d: lease lost before moving it to the Batch lane", job.id)
            return
        log.info("job %d: Flex shed it (%s); moved to the Batch lane at the same price", job.id, exc.kind)
        self._on_delivery()

    async def _served_stale(self, job: Job, slot_id: str, exc: ProviderError, elapsed: float) -> bool:
        """The last resort when every route is down (overloaded, rate-limited, circuit open):
        the team's own earlier image for this very request, however old, at $0.

        Only on the Standard and Priority lanes: Flex and Batch jobs wait to be
        answered (a shed is not an outage). Never for a reroll (it has no cache
        key), another team's image or one a fallback made; the team's policy
        may turn it off. The job ends through the store's normal completion, so
        its hold is released whole and its result delivered once."""
        if (not isinstance(exc, QuotaError | OverloadedError) or job.cache_key is None
                or job.spec.lane not in (Lane.STANDARD, Lane.PRIORITY)
                or not self._policies.for_team(job.team).stale_cache_fallback):
            return False
        gateway = self._catalog.gateways.get(exc.route or "")
        if gateway is not None and gateway.bills_failed_calls:
            return False  # that failure is billed: _failed charges it, and a $0 answer would hide it
        earlier = await self._store.stale_result(job.team, job.cache_key)
        if earlier is None:
            return False
        image = earlier.image
        outcome = {key: value for key, value in earlier.result.items() if key not in ("cached", "hedge")}
        outcome |= {"cost_usd": "0", "elapsed_s": round(elapsed, 3), "stale": True,
                    "stale_from_job": earlier.job_id, "stale_made_at": earlier.finished_at,
                    "unavailable": exc.kind}
        image_id = await self._stored(lambda: self._store.complete(
            job.id, slot_id, job.attempt, CheckedImage(image.data, image.mime, image.width, image.height, image.sha256),
            outcome, NewDelivery(final_delivery_key(job.id), "result", outcome), None,
        ), job)
        if image_id is None:
            log.warning("job %d: lease lost before serving the earlier image; another worker owns the job now",
                        job.id)
            return True
        self._metrics.stale_answers.inc()
        self._on_delivery()
        log.warning("job %d: every route is down (%s); served job %d's image for the identical request at $0",
                    job.id, exc, earlier.job_id)
        return True

    async def _settle_hedge(self, job: Job, hedge: HedgeCall) -> Decimal | None:
        """Record what a hedged attempt's other call cost; None when it reported nothing to settle.

        A call cancelled before it answered reported no usage, so nothing is
        recorded for it, although Google may bill it (an answer it was still
        making). A call that answered is settled like any other: an image from
        its usage or reported charge, an answer without one for its tokens."""
        cost = self._hedge_cost(job, hedge)
        self._metrics.hedges.labels("hedge" if hedge.won else "primary",
                                    "cancelled" if hedge.answer is None else "answered").inc()
        calls_log.info(json.dumps({
            "event": "hedge_call", "job": job.id, "attempt": job.attempt, "route": hedge.route,
            "model": hedge.model_alias, "hedge_won": hedge.won, "answered": hedge.answer is not None,
            "cost_usd": None if cost is None else str(cost[0])}))
        if cost is None:
            return None
        amount, usage, status = cost
        await self._stored(lambda: self._store.settle_hedge(job.id, job.attempt,
                                                            Charge(to_micros(amount), usage, status)), job)
        self._metrics.charged(job.team, float(amount))
        return amount

    def _hedge_cost(self, job: Job, hedge: HedgeCall) -> tuple[Decimal, Usage | None, str] | None:
        answer = hedge.answer
        if isinstance(answer, GenerationResult):
            try:
                return self._cost_of(job, answer)[1], answer.usage, "succeeded"
            except Exception:  # noqa: BLE001 - the start-up checks price every route; say so loudly if not
                log.exception("job %d: unpriced, needs review: the hedged call to %s via %s made an image but "
                              "could not be priced; usage %s", job.id, hedge.model_alias, hedge.route,
                              answer.usage.to_json() if answer.usage else None)
                return None
        if not isinstance(answer, ProviderError):
            return None
        # An answer without an image is billed: the route's own figure, else its tokens.
        status = "blocked" if isinstance(answer, BlockedError) else "failed"
        usage = getattr(answer, "usage", None)
        if getattr(answer, "cost_usd", None) is not None:
            return answer.cost_usd, usage, status
        if usage is not None:
            return pricing.tokens_cost(self._catalog.resolve(hedge.model_alias), job.spec.lane, usage), usage, status
        gateway = self._catalog.gateways.get(hedge.route)
        price = gateway.price(hedge.model_alias, job.spec.size) if gateway is not None else None
        if gateway is not None and gateway.bills_failed_calls and price is not None:
            return price, None, answer.kind
        return None

    def _cost_of(self, job: Job, result: GenerationResult) -> tuple[ModelInfo, Decimal]:
        """The model that actually ran (a fallback may differ) and what its call cost:
        the provider's reported charge, else the price table applied to its usage."""
        model = self._catalog.resolve(result.model_alias or job.spec.model_alias)
        if result.cost_usd is not None:
            return model, result.cost_usd
        return model, pricing.settle(model, job.spec.size, result.served_lane or job.spec.lane, result.usage)

    async def _unpriced(self, job: Job, slot_id: str, result: GenerationResult, exc: Exception) -> None:
        """A call ran but cannot be priced (start-up checks should make this impossible).

        The job ends failed at once, never re-run (a retry would be another
        unpriced call), and its hold is released; the operator is alerted to
        settle the call by hand, since Google bills it all the same."""
        route = result.route or self._provider.name
        model = result.model_alias or job.spec.model_alias
        log.error("job %d: unpriced, needs review: a call to %s via %s (%s, %s lane) ran but could not be "
                  "priced: %r; usage %s", job.id, model, route, job.spec.size, job.spec.lane.value, exc,
                  result.usage.to_json() if result.usage else None, exc_info=exc)
        self._log_call(job, result.call_seconds or 0.0, usage=result.usage, route=route)
        error = UnpricedCall(f"{model} via {route} at {job.spec.size} could not be priced: {exc}")
        error.route = route
        await self._failed(job, slot_id, error, retryable=False)
        if self._watch is not None:  # after the job is ended: an alert that fails must not re-run it
            await self._watch.alert(f"unpriced:{job.id}", (
                f"Job {job.id} of team {job.team}: a call to {model} via {route} at {job.spec.size} ran but "
                f"could not be priced ({exc}). Unpriced, needs review: nothing was recorded in the ledger; "
                f"add the price to IMAGINE_CONFIG and settle the call by hand."))

    async def _check_hold(self, job: Job, cost_micros: int, model: str, route: str) -> None:
        """A call that cost more than its job held is charged in full (that is the bill), but
        the budget checks trusted the hold, so it is counted and an operator is told.
        A hold of 0 is unknown (a store that does not report it), not an overshoot."""
        over = cost_micros - job.held_micros
        if job.held_micros <= 0 or over <= 0:
            return
        self._metrics.overshoot(route=route, model=model, usd=over / 1_000_000)
        remedy = (f"{model}'s \"{job.spec.size}\" price in [gateways.{route}.price]"
                  if route in self._catalog.gateways else f"[models.{model}] text_allowance_tokens")
        text = (f"Job {job.id} ({model} {job.spec.size}, {job.spec.lane.value} lane, via {route}) cost "
                f"${from_micros(cost_micros)}, ${from_micros(over)} more than the ${from_micros(job.held_micros)} "
                f"held for it. The ledger charges what was billed, so budgets may have gone over by that much. "
                f"If it recurs, raise {remedy} in IMAGINE_CONFIG.")
        if self._watch is not None:
            await self._watch.alert(f"overshoot:{job.id}:{job.attempt}", text)
        else:
            log.warning("alert: %s", text)

    async def _stored(self, write: Callable[[], Awaitable[T]], job: Job) -> T:
        """Write an outcome, riding out a briefly unavailable database: the
        image is already paid for, so giving up early would pay for it twice."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(StoreUnavailable), stop=stop_after_attempt(STORE_WRITE_ATTEMPTS),
            wait=wait_random_exponential(multiplier=0.5, max=30), reraise=True,
            before_sleep=lambda state: log.warning("job %d: store unavailable while saving its outcome (%s); "
                                                   "retrying", job.id, state.outcome.exception())):
            with attempt:
                return await write()
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def inputs(self, job: Job) -> list[InputImage]:
        """The image being edited (if any) first, then the user's attachments."""
        stored = await self._store.job_inputs(job.id)
        if job.spec.parent_image_id is not None:
            parent = await self._store.get_image(job.spec.parent_image_id)
            if parent is None:
                raise BadRequestError(f"image {job.spec.parent_image_id} to edit no longer exists")
            stored.insert(0, parent)
        return [InputImage(img.data, img.mime) for img in stored]

    def _check_output(self, result: GenerationResult) -> CheckedImage:
        try:
            return images.check(result.image.data, max_bytes=MAX_OUTPUT_BYTES)
        except Exception as exc:
            raise InvalidProviderImage(f"provider returned an unreadable image: {exc}") from exc

    async def _failed(self, job: Job, slot_id: str, exc: ProviderError, *, retryable: bool | None = None,
                      billed: Decimal | None = None, usage: Usage | None = None) -> None:
        retryable = exc.retryable if retryable is None else retryable
        if retryable and exc.attempts_cap is not None and job.attempt >= exc.attempts_cap:
            # Some failures earn only so many calls per job (a "no image" answer: one more try).
            retryable = False
        now = self._clock()
        delay = exc.retry_after
        if delay is None:
            # Full jitter: spreads a burst of failed jobs instead of retrying in lockstep.
            delay = random.uniform(0, min(self._retry_cap, self._retry_base * 2 ** (job.attempt - 1)))
        final_state = JobState.BLOCKED if isinstance(exc, BlockedError) else JobState.FAILED
        # Flex answers in minutes and may wait for the Batch lane: its retries get the Batch lane's days too.
        deadline = self._batch_deadline if job.spec.lane in (Lane.BATCH, Lane.FLEX) else self._deadline
        if retryable and now + delay > job.created_at + deadline:
            # Past the job's deadline a retry would answer too late to matter.
            retryable, final_state = False, JobState.DEAD
        # What an operator needs to reproduce the failure, never the prompt itself.
        result: dict = {"repro": {
            "model_id": job.spec.model_id, "route": exc.route or self._provider.name, "size": job.spec.size,
            "aspect_ratio": job.spec.aspect_ratio, "status_code": exc.status_code,
            "request_id": exc.request_id, "prompt_sha256": prompt_hash(job.spec.prompt), "error_class": exc.kind}}
        charge = None
        gateway = self._catalog.gateways.get(exc.route or "")
        answered = exc if isinstance(exc, AnsweredWithoutImage) else None
        # A refusal is "blocked" in the ledger; any other answer without an image is a billed failure.
        status = "blocked" if isinstance(exc, BlockedError) else "failed"
        if answered is not None:
            result |= {"block_reason" if status == "blocked" else "finish_reason": answered.reason}
        if answered is not None and answered.cost_usd is not None:
            # The route reported what it charged for the answer: that is the bill.
            result |= {"cost_usd": str(answered.cost_usd)}
            charge = Charge(to_micros(answered.cost_usd), answered.usage, status)
        elif gateway is not None and billed is None:
            # A gateway's own rule: failed calls are billed at its per-image price, or not at all.
            price = gateway.price(exc.model_alias or job.spec.model_alias, job.spec.size)
            if gateway.bills_failed_calls and price is not None:
                result |= {"cost_usd": str(price)}
                charge = Charge(to_micros(price), getattr(exc, "usage", None), exc.kind)
        elif answered is not None and answered.usage is not None:
            # An answer without an image is billed for the tokens it used, at the rates of the model that ran.
            model = self._catalog.resolve(exc.model_alias or job.spec.model_alias)
            cost = pricing.tokens_cost(model, job.spec.lane, answered.usage)
            result |= {"usage": answered.usage.to_json(), "cost_usd": str(cost)}
            charge = Charge(to_micros(cost), answered.usage, status)
        elif billed is not None:
            result |= {"cost_usd": str(billed)}
            charge = Charge(to_micros(billed), usage, "failed")
        state = await self._stored(lambda: self._store.fail(
            job.id, slot_id, job.attempt, error_class=exc.kind, detail=str(exc),
            retryable=retryable, final_state=final_state, retry_at=now + delay,
            delivery=NewDelivery(final_delivery_key(job.id), "failure",
                                 {"error_class": exc.kind, "detail": exc.detail[:500]}),
            result=result, charge=charge,
        ), job)
        if charge is not None:  # after the charge is saved: nothing here may cost it
            await self._check_hold(job, charge.cost_micros, exc.model_alias or job.spec.model_alias,
                                   exc.route or self._provider.name)
        if state is None:
            log.warning("job %d: lease lost before recording failure %s", job.id, exc.kind)
        elif state is JobState.QUEUED:
            log.warning("job %d: attempt %d/%d failed (%s); retrying in %.1fs", job.id, job.attempt,
                        job.max_attempts, exc, delay)
        else:
            log.error("job %d: %s after attempt %d: %s", job.id, state.value, job.attempt, exc)
            self._on_delivery()

    def _log_call(self, job: Job, latency: float, *, usage: Usage | None = None, cost: str | None = None,
                  error: ProviderError | None = None, route: str | None = None) -> None:
        """One structured line (and the metrics) per provider call: enough to chart and debug, no prompt text."""
        route = route or (error.route if error else None) or self._provider.name
        # A batch or Flex answer takes minutes to hours by design: not a latency to chart or alert on.
        interactive = job.spec.lane.interactive
        self._metrics.provider_call(route=route, model=job.spec.model_id, size=job.spec.size,
                                    status="ok" if error is None else error.kind,
                                    seconds=latency if interactive else None)
        if self._watch is not None and interactive:
            self._watch.observe(error_kind=error.kind if error else None, seconds=latency)
        if cost is not None:
            self._metrics.charged(job.team, float(cost), lane=job.spec.lane.value)
        calls_log.info(json.dumps({
            "event": "provider_call", "job": job.id, "attempt": job.attempt, "route": route,
            "model": job.spec.model_id, "size": job.spec.size, "lane": job.spec.lane.value,
            "prompt_sha256": prompt_hash(job.spec.prompt),
            "status": "ok" if error is None else error.kind,
            "http_status": error.status_code if error else None, "latency_ms": round(latency * 1000),
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "image_tokens": usage.image_tokens if usage else None, "cost_usd": cost,
        }))

    async def _heartbeat(self, job: Job, slot_id: str) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                held = await self._store.extend_lease(job.id, slot_id, job.attempt, self._lease)
            except StoreUnavailable as exc:
                log.warning("job %d: could not extend lease: %s", job.id, exc)
                continue
            if not held:
                log.warning("job %d: lease was taken over; the result will be discarded", job.id)
                return
