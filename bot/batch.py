"""The relaxed lane (`--relax`): jobs go to Gemini's Batch API at half price.

Two loops. `send` gathers the relaxed jobs waiting in the queue into batches
(one model per batch, the requests inlined, at most `max_jobs` of them and
under Google's inline size limit) every `window` seconds; `poll`
asks Google about the batches that are due and finishes their jobs through
the worker's usual outcome path, so pricing (at the batch rate), the ledger
and delivery are the same as for any job. Both loops are safe in several
processes at once: the store hands each job, and each poll, to one of them.

A batch goes through the store in three steps (`open_batch`, `batch_sending`,
`batch_submitted`) around the one call that creates it at Google. If the
process dies in between, or the create call's answer is lost (a timeout, a
dropped connection, a 5xx: Google may have created it all the same), the
batch is left `creating`; after `stale_after` a poller looks for it at
Google by its display name and either adopts it or puts its jobs back in
the queue. A sender slower than that finds its batch given back and cancels
what it created. So a job is not sent twice, and never billed unrecorded.
A batch still out after `max_age` is cancelled and its holds released.

Google refuses a whole batch with a 400 when one of its requests is invalid,
without saying which: the sender then halves the batch (nothing was created
or billed) and sends each half as its own, until the refused request is
alone; it fails with its own error, and the others go out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from bot.providers.base import BatchItem, BatchProvider, BatchStatus
from bot.providers.errors import BadRequestError, BatchNotDone, OverloadedError, ProviderError, TooBigForBatch
from bot.store.batch_sizing import BATCH_INLINE_BYTES, inline_request_bytes
from bot.store.ports import Store, StoreUnavailable
from bot.types import Batch, GenerationResult, Job
from bot.worker import Worker

log = logging.getLogger(__name__)
ROUTE = "gemini-batch"


class BatchRunner:
    def __init__(
        self,
        store: Store,
        provider: BatchProvider,
        worker: Worker,
        *,
        window: float = 60.0,
        max_jobs: int = 100,
        poll_interval: float = 60.0,
        stale_after: float = 900.0,
        max_age: float = 72 * 3600.0,
        max_bytes: int = BATCH_INLINE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._provider = provider
        self._worker = worker  # records each job's outcome exactly as for the interactive lane
        self._window = window
        self._max_jobs = max_jobs
        # Google's inline limit for one batch's requests: batches are cut by bytes as well as count.
        self._max_bytes = max_bytes
        self._poll = poll_interval
        # Longer than any create call can take: a batch still `creating` after this lost its process.
        self._stale_after = stale_after
        # Google expires a batch after 48 h; past this, we stop waiting whatever it says.
        self._max_age = max_age
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self._every(self._window, self.send, stop), self._every(self._poll, self.poll, stop))

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
        while (batch := await self._store.open_batch(self._max_jobs, self._max_bytes)) is not None:
            created = await self._create(batch)
            if created is None:
                break  # Google refused the batch; its jobs wait for their retry time
            sent += created
        return sent

    async def _create(self, batch: Batch) -> int | None:
        """Send one opened batch; the number of batches Google created for it, None when it refused."""
        pending = []
        for job in batch.jobs:
            try:
                inputs = await self._worker.inputs(job)
            except ProviderError as exc:  # e.g. the image to edit is gone: this job alone fails
                await self._worker.finish(job, batch.worker_id, exc, 0.0)
                continue
            size = inline_request_bytes(sum(len(i.data) for i in inputs), len(inputs), job.spec.prompt)
            if size > self._max_bytes:  # queued before submit refused such requests: it can never go inline
                await self._worker.finish(
                    job,
                    batch.worker_id,
                    TooBigForBatch(
                        f"{size / 1_048_576:.1f} MB inline, over the {self._max_bytes / 1_048_576:.0f} MB a batch takes"
                    ),
                    0.0,
                )
                continue
            pending.append((job, BatchItem(job.spec, inputs)))
        if not pending:
            await self._store.close_batch(batch.id, "empty")
            return 0
        return await self._submit(batch, pending)

    async def _submit(self, batch: Batch, pending: Sequence[tuple[Job, BatchItem]]) -> int | None:
        await self._store.batch_sending(batch.id, [job.id for job, _ in pending])
        try:
            name = await self._provider.submit_batch(batch.model_id, [item for _, item in pending], display_name(batch))
        except OverloadedError as exc:
            # No answer is not a no: Google may have created it. Recovery looks it up by name.
            log.warning(
                "batch %d: no clear answer creating it (%s); it is looked up at Google after %.0f s",
                batch.id,
                exc,
                self._stale_after,
            )
            return None
        except BadRequestError as exc:
            if len(pending) == 1:  # the request Google refuses, alone: it fails with its own error
                log.warning("batch %d: Gemini refused job %d: %s", batch.id, pending[0][0].id, exc)
                await self._give_back(batch, exc, [pending[0][0]])
                return 0
            return await self._split(batch, pending, exc)
        except ProviderError as exc:
            log.warning("batch %d: Gemini refused %d jobs: %s", batch.id, len(pending), exc)
            await self._give_back(batch, exc, [job for job, _ in pending])
            return None
        if not await self._store.batch_submitted(batch.id, name, self._clock() + self._poll):
            log.error("batch %d: recovery gave its jobs back while it was being created; cancelling %s", batch.id, name)
            await self._provider.cancel_batch(name)
            return None
        log.info("batch %d: sent %d %s jobs as %s", batch.id, len(pending), batch.model_id, name)
        return 1

    async def _split(self, batch: Batch, pending: Sequence[tuple[Job, BatchItem]], exc: ProviderError) -> int | None:
        """A 400 for the whole batch names no request, and nothing was created or billed: send
        each half as its own batch, so the request Google refuses ends up failing alone."""
        half = len(pending) // 2
        log.warning(
            "batch %d: Gemini refused its %d requests (%s); sending them as two batches", batch.id, len(pending), exc
        )
        other = await self._store.split_batch(batch.id, [job.id for job, _ in pending[half:]])
        items = {job.id: item for job, item in pending[half:]}
        first = await self._submit(batch, pending[:half])
        second = await self._submit(other, [(job, items[job.id]) for job in other.jobs])
        return None if first is None or second is None else first + second

    async def _give_back(self, batch: Batch, exc: ProviderError, jobs: Sequence[Job]) -> None:
        """The batch was never created: its jobs retry (or fail) like any failed call, uncharged."""
        for job in jobs:
            await self._worker.finish(job, batch.worker_id, exc, 0.0)
        await self._store.close_batch(batch.id, f"not created: {exc.kind}")

    # -- polling -----------------------------------------------------------

    async def poll(self) -> int:
        """Check every batch that is due; returns how many jobs were finished."""
        finished = 0
        for batch in await self._store.due_batches(self._poll, self._stale_after):
            try:
                finished += await self._check(batch)
            except ProviderError as exc:
                if self._clock() - batch.created_at < self._max_age:
                    log.warning("batch %d (%s): poll failed, trying again later: %s", batch.id, batch.remote_name, exc)
                    continue
                log.error(
                    "batch %d (%s): still failing to poll after %.0f h; giving up: %s",
                    batch.id,
                    batch.remote_name,
                    self._max_age / 3600,
                    exc,
                )
                finished += await self._finish(batch, BatchStatus("abandoned"))
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
            if self._clock() - batch.created_at < self._max_age:
                return 0
            log.error(
                "batch %d (%s): still %s after %.0f h; cancelling it",
                batch.id,
                batch.remote_name,
                status.state,
                self._max_age / 3600,
            )
            await self._provider.cancel_batch(batch.remote_name)
            status = BatchStatus("abandoned")
        return await self._finish(batch, status)

    async def _finish(self, batch: Batch, status: BatchStatus) -> int:
        """Each waiting job gets its answer (or, unless the batch succeeded, BatchNotDone: uncharged)."""
        waiting = batch.waiting()
        elapsed = self._clock() - batch.created_at
        if status.state == "succeeded":
            # batch_status already refused an answer count other than len(job_ids): no check here.
            outcomes = dict(zip(batch.job_ids, status.answers, strict=False))
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
        log.warning(
            "batch %d: its sender died before creating it; its %d jobs go back to the queue", batch.id, len(batch.jobs)
        )
        gone = OverloadedError("the batch was interrupted before Gemini received it")
        await self._give_back(batch, gone, batch.jobs)
        return len(batch.jobs)


def display_name(batch: Batch) -> str:
    """Unique per batch and per database, so a crashed batch can be found again."""
    return f"imagine-bot-{batch.id}-{int(batch.created_at)}"
