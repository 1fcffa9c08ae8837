"""The relaxed lane (`--relax`): jobs go to Gemini's Batch API at half price.

Two loops. `send` gathers the relaxed jobs waiting in the queue into batches
(one model per batch, the requests inlined) every `window` seconds; `poll`
asks Google about the batches that are due and finishes their jobs through
the worker's usual outcome path, so pricing (at the batch rate), the ledger
and delivery are the same as for any job. Both loops are safe in several
processes at once: the store hands each job, and each poll, to one of them.

A batch goes through the store in three steps (`open_batch`, `batch_sending`,
`batch_submitted`) around the one call that creates it at Google. If the
process dies in between, the batch is left `creating`; after `stale_after`
a poller looks for it at Google by its display name and either adopts it
or puts its jobs back in the queue, so nothing is sent, or paid for, twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from bot.providers.base import BatchItem, BatchProvider, BatchStatus
from bot.providers.errors import BatchNotDone, OverloadedError, ProviderError
from bot.store.base import Batch, Store, StoreUnavailable
from bot.types import GenerationResult
from bot.worker import Worker

log = logging.getLogger(__name__)
ROUTE = "gemini-batch"


class BatchRunner:
    def __init__(
        self, store: Store, provider: BatchProvider, worker: Worker, *, window: float = 60.0,
        max_jobs: int = 100, poll_interval: float = 60.0, stale_after: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._provider = provider
        self._worker = worker  # records each job's outcome exactly as for the interactive lane
        self._window = window
        self._max_jobs = max_jobs
        self._poll = poll_interval
        # Longer than any create call can take: a batch still `creating` after this lost its process.
        self._stale_after = stale_after
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self._every(self._window, self.send, stop),
                             self._every(self._poll, self.poll, stop))

    async def _every(self, interval: float, step: Callable[[], Awaitable[object]], stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await step()
            except StoreUnavailable as exc:
                log.warning("batch lane: store unavailable: %s", exc)
            except Exception:
                log.exception("batch lane: %s failed; trying again in %.0f s", step.__name__, interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    # -- sending -----------------------------------------------------------

    async def send(self) -> int:
        """Send the relaxed jobs waiting now, one batch per model; returns how many batches went out."""
        sent = 0
        while (batch := await self._store.open_batch(self._max_jobs)) is not None:
            if not await self._create(batch):
                break  # Google refused the batch; its jobs wait for their retry time
            sent += 1
        return sent

    async def _create(self, batch: Batch) -> bool:
        items, job_ids = [], []
        for job in batch.jobs:
            try:
                inputs = await self._worker.inputs(job)
            except ProviderError as exc:  # e.g. the image to edit is gone: this job alone fails
                await self._worker.finish(job, batch.worker_id, exc, 0.0)
                continue
            items.append(BatchItem(job.spec, inputs))
            job_ids.append(job.id)
        if not items:
            await self._store.close_batch(batch.id, "empty")
            return True
        await self._store.batch_sending(batch.id, job_ids)
        try:
            name = await self._provider.submit_batch(batch.model_id, items, display_name(batch))
        except ProviderError as exc:
            log.warning("batch %d: Gemini refused %d jobs: %s", batch.id, len(items), exc)
            await self._give_back(batch, exc)
            return False
        await self._store.batch_submitted(batch.id, name, self._clock() + self._poll)
        log.info("batch %d: sent %d %s jobs as %s", batch.id, len(items), batch.model_id, name)
        return True

    async def _give_back(self, batch: Batch, exc: ProviderError) -> None:
        """The batch was never created: its jobs retry (or fail) like any failed call, uncharged."""
        for job in batch.jobs:
            await self._worker.finish(job, batch.worker_id, exc, 0.0)
        await self._store.close_batch(batch.id, f"not created: {exc.kind}")

    # -- polling -----------------------------------------------------------

    async def poll(self) -> int:
        """Check every batch that is due; returns how many jobs were finished."""
        finished = 0
        for batch in await self._store.due_batches(self._poll, self._stale_after):
            try:
                finished += await self._check(batch)
            except ProviderError as exc:  # the poll itself failed: the next one tries again
                log.warning("batch %d (%s): poll failed: %s", batch.id, batch.remote_name, exc)
        return finished

    async def _check(self, batch: Batch) -> int:
        if batch.state == "creating":
            return await self._recover(batch)
        assert batch.remote_name is not None
        try:
            status = await self._provider.batch_status(batch.remote_name, batch.model_id, len(batch.job_ids))
        except ProviderError as exc:
            if exc.status_code != 404:
                raise
            status = BatchStatus("lost")  # deleted at Google: its jobs are released, like an expired batch
        if not status.finished:
            return 0
        waiting = batch.waiting()
        elapsed = self._clock() - batch.created_at
        if status.state == "succeeded":
            outcomes = dict(zip(batch.job_ids, status.answers))
        else:
            gone = BatchNotDone(f"Gemini batch {batch.remote_name} ended {status.state}; nothing was billed")
            outcomes = dict.fromkeys(batch.job_ids, gone)
        for job_id, outcome in outcomes.items():
            job = waiting.get(job_id)
            if job is None:
                continue  # finished by an earlier poll that died half-way
            if isinstance(outcome, GenerationResult):
                outcome = dataclasses.replace(outcome, route=ROUTE)
            else:
                outcome.route = ROUTE
            await self._worker.finish(job, batch.worker_id, outcome, elapsed)
        await self._store.close_batch(batch.id, status.state)
        log.info("batch %d (%s) %s: %d jobs finished", batch.id, batch.remote_name, status.state, len(waiting))
        return len(waiting)

    async def _recover(self, batch: Batch) -> int:
        """A batch whose creator died mid-way: adopt it if Google has it, else requeue its jobs."""
        name = await self._provider.find_batch(display_name(batch)) if batch.job_ids else None
        if name is not None:
            log.warning("batch %d: its sender died after creating it; adopting %s", batch.id, name)
            await self._store.batch_submitted(batch.id, name, self._clock())
            return 0
        log.warning("batch %d: its sender died before creating it; its %d jobs go back to the queue",
                    batch.id, len(batch.jobs))
        await self._give_back(batch, OverloadedError("the batch was interrupted before Gemini received it"))
        return len(batch.jobs)


def display_name(batch: Batch) -> str:
    """Unique per batch and per database, so a crashed batch can be found again."""
    return f"imagine-bot-{batch.id}-{int(batch.created_at)}"
