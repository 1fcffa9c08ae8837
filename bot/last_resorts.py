"""What the worker does when no route can answer a job now, before calling it a failure.

A Flex job Google sheds moves to the Batch lane (answered within hours, at the
same half price); when every route is down, the team's own earlier image for
the identical request is served at $0. Either way nothing is billed for the
call that failed, and the job ends (or moves) through the store's usual writes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.catalog import Catalog
from bot.metrics import Metrics
from bot.outcome_writes import write_outcome
from bot.providers.errors import OverloadedError, ProviderError, QuotaError
from bot.store.batch_sizing import BATCH_INLINE_BYTES, inline_request_bytes
from bot.store.ports import Store, final_delivery_key
from bot.types import CheckedImage, InputImage, Job, Lane, NewDelivery
from policies.config import PolicyBook

# The worker's logger: these lines read, and are filtered, as the worker's own.
log = logging.getLogger("bot.worker")


class LastResorts:
    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        policies: PolicyBook,
        metrics: Metrics,
        *,
        batch_lane: bool,
        inputs: Callable[[Job], Awaitable[list[InputImage]]],
        on_delivery: Callable[[], None],
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._policies = policies
        self._metrics = metrics
        # A Batch runner serves this queue, so a Flex job Google sheds can wait for it.
        self._batch_lane = batch_lane
        self._inputs = inputs
        self._on_delivery = on_delivery

    async def took_over(self, job: Job, slot_id: str, exc: ProviderError, elapsed: float) -> bool:
        """Whether this failure was answered otherwise (moved to the Batch lane, or served an
        earlier image); False leaves it to the worker's failure path."""
        # A Flex job Google sheds moves to the Batch lane first: it will be answered, at
        # the same price; the stale image is for when nothing else can answer.
        if self._sheds(job, exc) and await self._fits_a_batch(job):
            await self._to_batch(job, slot_id, exc)
            return True
        return await self._served_stale(job, slot_id, exc, elapsed)

    def _sheds(self, job: Job, exc: ProviderError) -> bool:
        """Flex is best effort: a 429 or 503 (or no answer in time) on it is Google shedding
        the request, not a failure of the route or the request."""
        return (
            job.spec.lane is Lane.FLEX
            and self._batch_lane
            and exc.retryable
            and isinstance(exc, QuotaError | OverloadedError)
        )

    async def _fits_a_batch(self, job: Job) -> bool:
        """Whether a batch could take the job inline: one too big stays on Flex (which takes it)."""
        try:
            inputs = await self._inputs(job)
        except ProviderError:
            return False  # its failure path says why
        size = inline_request_bytes(sum(len(i.data) for i in inputs), len(inputs), job.spec.prompt)
        return size <= BATCH_INLINE_BYTES

    async def _to_batch(self, job: Job, slot_id: str, exc: ProviderError) -> None:
        """A shed Flex job goes to the Batch lane at the same half price (its hold stands), and
        the user is told; the Batch runner takes it from there. Nothing was billed for the shed call."""
        moved = await write_outcome(
            lambda: self._store.relane(
                job.id,
                slot_id,
                job.attempt,
                Lane.BATCH,
                NewDelivery(
                    f"job:{job.id}:relaned:{job.attempt}",
                    "started",
                    {
                        "attempt": job.attempt,
                        "relaned": Lane.BATCH.value,
                        "from": Lane.FLEX.value,
                        "error_class": exc.kind,
                    },
                ),
            ),
            job,
        )
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
        if (
            not isinstance(exc, QuotaError | OverloadedError)
            or job.cache_key is None
            or job.spec.lane not in (Lane.STANDARD, Lane.PRIORITY)
            or not self._policies.for_team(job.team).stale_cache_fallback
        ):
            return False
        gateway = self._catalog.gateways.get(exc.route or "")
        if gateway is not None and gateway.bills_failed_calls:
            return False  # that failure is billed: _failed charges it, and a $0 answer would hide it
        earlier = await self._store.stale_result(job.team, job.cache_key)
        if earlier is None:
            return False
        image = earlier.image
        outcome = {key: value for key, value in earlier.result.items() if key not in ("cached", "hedge")}
        outcome |= {
            "cost_usd": "0",
            "elapsed_s": round(elapsed, 3),
            "stale": True,
            "stale_from_job": earlier.job_id,
            "stale_made_at": earlier.finished_at,
            "unavailable": exc.kind,
        }
        image_id = await write_outcome(
            lambda: self._store.complete(
                job.id,
                slot_id,
                job.attempt,
                CheckedImage(image.data, image.mime, image.width, image.height, image.sha256),
                outcome,
                NewDelivery(final_delivery_key(job.id), "result", outcome),
                None,
            ),
            job,
        )
        if image_id is None:
            log.warning("job %d: lease lost before serving the earlier image; another worker owns the job now", job.id)
            return True
        self._metrics.stale_answers.inc()
        self._on_delivery()
        log.warning(
            "job %d: every route is down (%s); served job %d's image for the identical request at $0",
            job.id,
            exc,
            earlier.job_id,
        )
        return True
