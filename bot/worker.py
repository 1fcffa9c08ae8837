"""The worker: leases jobs, calls the provider, stores the outcome.

N slots run concurrently on one event loop (generation is I/O-bound). Each
job is held by a lease that a heartbeat extends while the provider works;
if this process dies, the lease runs out and another worker takes the job.
Every state change goes through the store together with its outbox row,
so a job is finished, charged and announced once.

What a call is charged, and whether a failure is retried, are decided by
pure functions (bot.money.charges, through bot.call_bills; bot.retries) that
this module hands to the store. Beside it: bot.call_log (the log line,
metrics and overshoot or unpriced alert of each call), bot.job_results (what
a result records), bot.last_resorts (a shed Flex job to the Batch lane, an
earlier image when every route is down) and bot.outcome_writes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from decimal import Decimal

from bot import images
from bot.alerts import CallWatch
from bot.call_bills import failure_bill, hedge_bill, success_bill
from bot.call_log import CallLog
from bot.catalog import Catalog
from bot.job_results import failure_result, success_result
from bot.last_resorts import LastResorts
from bot.lease_batches import LeaseBatches
from bot.memory_budget import DEFAULT_MEMORY_MB, MIB, JobMemory, MemoryBudget
from bot.metrics import Metrics
from bot.money import to_micros
from bot.outcome_writes import write_outcome
from bot.providers.base import ImageProvider
from bot.providers.errors import BadRequestError, BlockedError, InvalidProviderImage, ProviderError
from bot.retries import retry_decision
from bot.store.ports import Store, StoreUnavailable, final_delivery_key
from bot.types import CheckedImage, GenerationResult, HedgeCall, InputImage, Job, JobState, Lane, NewDelivery, Usage
from policies.config import PolicyBook

log = logging.getLogger(__name__)
# Providers return up to 4K PNGs; anything bigger is not an image we want.
MAX_OUTPUT_BYTES = 64 * 1024 * 1024


class Worker:
    def __init__(
        self,
        store: Store,
        provider: ImageProvider,
        catalog: Catalog,
        *,
        concurrency: int = 4,
        lease_seconds: float = 120.0,
        poll_interval: float = 1.0,
        retry_base: float = 2.0,
        retry_cap: float = 120.0,
        worker_id: str | None = None,
        clock: Callable[[], float] = time.time,
        on_delivery: Callable[[], None] | None = None,
        only_job_id: int | None = None,
        deadline_seconds: float = 900.0,
        metrics: Metrics | None = None,
        batch_deadline_seconds: float = 3 * 86400.0,
        watch: CallWatch | None = None,
        batch_lane: bool = False,
        policies: PolicyBook | None = None,
        flex_slots: int | None = None,
        memory: MemoryBudget | None = None,
    ) -> None:
        # A Flex call may take 15 minutes: at most this many slots run Flex, so Standard
        # requests always find a slot.
        self._flex_slots = max(1, concurrency // 2) if flex_slots is None else flex_slots
        self._flex_running = 0
        self._watch = watch
        self._deadline = deadline_seconds
        # Relaxed jobs are answered within hours; their retries get days, not minutes.
        self._batch_deadline = batch_deadline_seconds
        self._metrics = metrics or Metrics()
        # Shared by every worker of the process: a job waits here for room for its image.
        self._memory = JobMemory(memory or MemoryBudget(DEFAULT_MEMORY_MB * MIB), catalog, self._metrics)
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
        self._calls = CallLog(self._metrics, watch, catalog, provider.name)
        # A Batch runner serves this queue (batch_lane), so a Flex job Google sheds can wait for it.
        self._last_resorts = LastResorts(
            store,
            catalog,
            policies or PolicyBook(),
            self._metrics,
            batch_lane=batch_lane,
            inputs=self.inputs,
            on_delivery=self._on_delivery,
        )
        self._wakeup = asyncio.Event()
        # Counts wake-ups, so a slot can tell one came while its lease call was in flight: the
        # lease may have run before that job was there, and idling then would wait a whole poll.
        self._wakeups = 0
        # Slots free at the same moment lease together, in one transaction.
        self._leases = LeaseBatches(store, lease_seconds, only_job_id)

    def wake(self) -> None:
        """Called on submit in this process, so a new job starts without waiting for a poll."""
        self._wakeups += 1
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
            if not await self._memory.before_lease(stop):  # one job waits for memory: lease no more
                continue
            # Reserve a Flex slot before asking, so concurrent slots can never take more than the cap.
            flex = self._flex_running < self._flex_slots
            self._flex_running += flex
            wakeups_before = self._wakeups
            try:
                job = await self._leases.take(slot_id, flex)
            except StoreUnavailable as exc:
                log.warning("worker %s: store unavailable: %s", slot_id, exc)
                job = None
            if flex and (job is None or job.spec.lane is not Lane.FLEX):
                self._flex_running -= 1
                flex = False
            if job is None:
                if self._wakeups == wakeups_before:  # else a job came meanwhile: lease again now
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
            log.warning(
                "job %d: store unavailable mid-job (%s); the job comes back when its lease expires", job.id, exc
            )
        except Exception:
            # Never let one job take the slot (and the process) down: its
            # lease runs out and the job is retried or dead-lettered.
            log.exception("job %d: worker slot failed; the job will come back when its lease expires", job.id)

    async def _idle(self, stop: asyncio.Event) -> None:
        self._wakeup.clear()
        # Woken by a submit in this process, by the database (PostgreSQL's NOTIFY), or by the poll timeout.
        waiters = [
            asyncio.ensure_future(self._wakeup.wait()),
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self._store.wait_for_jobs(self._poll)),
        ]
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
            await self._memory.release(job)

    async def _process(self, job: Job, slot_id: str) -> None:
        outcome: GenerationResult | ProviderError
        try:
            # Waits for memory for the job's image (the heartbeat renews the lease meanwhile).
            inputs = await self._memory.acquire(job, self.inputs)
        except ProviderError as exc:
            await self._failed(job, slot_id, exc)
            return
        started = time.monotonic()
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

    async def finish(self, job: Job, slot_id: str, outcome: GenerationResult | ProviderError, elapsed: float) -> None:
        """Record one provider call's outcome for a job `slot_id` holds: the
        image (charged, stored, delivered) or the failure (retried or final)."""
        # Latency is the provider's own time when the router measured it; `elapsed` includes queueing.
        latency = outcome.call_seconds if outcome.call_seconds is not None else elapsed
        # A hedged attempt's other call is settled first, so the release that ends the job frees only the rest.
        hedge_cost = await self._settle_hedge(job, outcome.hedge) if outcome.hedge is not None else None
        if isinstance(outcome, ProviderError):
            self._calls.call(job, latency, error=outcome)
            if not await self._last_resorts.took_over(job, slot_id, outcome, elapsed):
                await self._failed(job, slot_id, outcome)
            return
        result = outcome
        try:
            model, bill = success_bill(self._catalog, job, result)
        except Exception as exc:  # noqa: BLE001 - whatever the cause, the call ran and must be reviewed
            await self._unpriced(job, slot_id, result, exc)
            return
        try:
            checked = self._check_output(result)
        except ProviderError as exc:
            # The call returned (an unreadable image), so it was billed, by the model and route that ran.
            exc.route = exc.route or result.route
            await self._failed(job, slot_id, exc, billed=bill.cost, usage=result.usage)
            return
        cost = bill.cost
        self._calls.call(job, latency, usage=result.usage, cost=str(cost), route=result.route)
        record = success_result(
            job,
            model,
            result,
            route=result.route or self._provider.name,
            cost=cost,
            hedge_cost=hedge_cost,
            elapsed=elapsed,
        )
        image_id = await write_outcome(
            lambda: self._store.complete(
                job.id,
                slot_id,
                job.attempt,
                checked,
                record,
                NewDelivery(final_delivery_key(job.id), "result", record),
                bill.charge,
            ),
            job,
        )
        await self._calls.check_hold(job, to_micros(cost + (hedge_cost or 0)), model.alias, record["route"])
        if image_id is None:
            log.warning(
                "job %d: lease lost before completion; the call was charged, another worker owns the job now", job.id
            )
            return
        self._on_delivery()
        log.info(
            "job %d succeeded: model=%s size=%s cost=$%s in %.1fs",
            job.id,
            result.model_version,
            job.spec.size,
            cost,
            elapsed,
        )

    async def _settle_hedge(self, job: Job, hedge: HedgeCall) -> Decimal | None:
        """Record what a hedged attempt's other call cost; None when it reported nothing to settle.

        A call cancelled before it answered reported no usage, so nothing is
        recorded for it, although Google may bill it (an answer it was still
        making). A call that answered is settled like any other: an image from
        its usage or reported charge, an answer without one for its tokens."""
        bill = hedge_bill(self._catalog, job, hedge)
        self._calls.hedge(job, hedge, None if bill is None else bill.cost)
        if bill is None:
            return None
        await write_outcome(lambda: self._store.settle_hedge(job.id, job.attempt, bill.charge), job)
        self._metrics.charged(job.team, float(bill.cost))
        return bill.cost

    async def _unpriced(self, job: Job, slot_id: str, result: GenerationResult, exc: Exception) -> None:
        """A call ran but cannot be priced (start-up checks should make this impossible).

        The job ends failed at once, never re-run (a retry would be another
        unpriced call), and its hold is released; the operator is alerted to
        settle the call by hand, since Google bills it all the same."""
        error = self._calls.unpriced(job, result, exc)
        await self._failed(job, slot_id, error, retryable=False)
        # After the job is ended: an alert that fails must not re-run it.
        await self._calls.alert_unpriced(job, result, exc)

    async def inputs(self, job: Job) -> list[InputImage]:
        """The image being edited (if any) first, then the user's attachments."""
        # A job without attachments skips the read: a transaction fewer per job.
        stored = await self._store.job_inputs(job.id) if job.has_inputs else []
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

    async def _failed(
        self,
        job: Job,
        slot_id: str,
        exc: ProviderError,
        *,
        retryable: bool | None = None,
        billed: Decimal | None = None,
        usage: Usage | None = None,
    ) -> None:
        model_alias = exc.model_alias or job.spec.model_alias
        bill = failure_bill(self._catalog, job, exc, model_alias=model_alias, billed=billed, usage=usage)
        decision = retry_decision(
            retryable=exc.retryable if retryable is None else retryable,
            blocked=isinstance(exc, BlockedError),
            attempts_cap=exc.attempts_cap,
            retry_after=exc.retry_after,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            lane=job.spec.lane,
            created_at=job.created_at,
            now=self._clock(),
            deadline=self._deadline,
            relaxed_deadline=self._batch_deadline,
            retry_base=self._retry_base,
            retry_cap=self._retry_cap,
            charge=bill.charge,
            called=exc.called,
        )
        result = failure_result(job, exc, route=exc.route or self._provider.name)
        state = await write_outcome(
            lambda: self._store.fail(
                job.id,
                slot_id,
                job.attempt,
                error_class=exc.kind,
                detail=str(exc),
                retryable=decision.retryable,
                final_state=decision.final_state,
                retry_at=decision.retry_at,
                delivery=NewDelivery(
                    final_delivery_key(job.id), "failure", {"error_class": exc.kind, "detail": exc.detail[:500]}
                ),
                result=result | bill.result,
                charge=decision.charge,
                refund_attempt=decision.refund_attempt,
            ),
            job,
        )
        if decision.charge is not None:  # after the charge is saved: nothing here may cost it
            await self._calls.check_hold(
                job, decision.charge.cost_micros, model_alias, exc.route or self._provider.name
            )
        if state is None:
            log.warning("job %d: lease lost before recording failure %s", job.id, exc.kind)
        elif state is JobState.QUEUED and decision.refund_attempt:
            log.info("job %d: %s; waiting %.1fs (no attempt used)", job.id, exc, decision.delay)
        elif state is JobState.QUEUED:
            log.warning(
                "job %d: attempt %d/%d failed (%s); retrying in %.1fs",
                job.id,
                job.attempt,
                job.max_attempts,
                exc,
                decision.delay,
            )
        else:
            log.error("job %d: %s after attempt %d: %s", job.id, state.value, job.attempt, exc)
            self._on_delivery()

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
