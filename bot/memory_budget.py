"""A per-process budget for the bytes images in flight may take (IMAGINE_MEMORY_MB).

A 4K answer arrives as one JSON body holding the PNG in base64, and the bytes are
decoded, checked and stored before the next step lets them go: tens of megabytes per
job for a few seconds. Fifty such jobs at once took a worker to gigabytes. So every
job reserves, before its provider call, what the largest image of its model and size
can cost in memory (the catalog's `memory_bytes`, measured by bench/memory.py), and
waits here for room instead of running. A job that could never fit is refused.

Waiters are served first come, first served: a 4K job is not starved by a stream of
small ones that would each fit in the room left.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from bot.catalog import Catalog, normalize_size
from bot.metrics import Metrics
from bot.providers.errors import TooBigForMemory
from bot.types import GenerationSpec, InputImage, InvalidRequest, Job, Lane

MIB = 1024 * 1024
DEFAULT_MEMORY_MB = 512  # as Settings.imagine_memory_mb
# An input image (an edit's parent, an attachment) is in memory as its bytes, then the request
# the SDK builds carries it as base64 three times over (the dict, the JSON text, its encoding).
INPUT_COPIES = 5


class NeverFits(Exception):
    """The job needs more memory than the whole budget: waiting would never end."""

    def __init__(self, needed: int, limit: int) -> None:
        super().__init__(f"needs {needed / MIB:.0f} MB of image memory; this process allows {limit / MIB:.0f} MB")
        self.needed = needed
        self.limit = limit


class MemoryBudget:
    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes <= 0:
            raise ValueError("the memory budget must be positive")
        self.limit = limit_bytes
        self.in_use = 0
        self._changed = asyncio.Condition()
        self._queue: deque[object] = deque()  # one token per waiting reservation, in arrival order
        # For the bench and /metrics: the longest anyone waited, and how many ever had to.
        self.waits = 0
        self.longest_wait = 0.0
        self.peak = 0  # the most ever reserved at once

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def fits(self, nbytes: int) -> bool:
        """Whether a reservation of `nbytes` can ever be granted here."""
        return nbytes <= self.limit

    @asynccontextmanager
    async def reserve(self, nbytes: int) -> AsyncIterator[float]:
        """Hold `nbytes` of the budget for the block; yields the seconds spent waiting for them.

        Raises NeverFits at once for more than the whole budget. The bytes are given back
        however the block ends (an error, a cancellation), and a waiter cancelled before its
        turn leaves the queue without taking anything."""
        waited = await self.acquire(nbytes)
        try:
            yield waited
        finally:
            await self.release(nbytes)

    async def acquire(self, nbytes: int) -> float:
        """Take `nbytes` of the budget, waiting for them; the seconds waited. Give them back
        with release(). NeverFits at once for more than the whole budget."""
        if not self.fits(nbytes):
            raise NeverFits(nbytes, self.limit)
        nbytes = max(0, nbytes)
        started = time.monotonic()
        token = object()
        async with self._changed:
            self._queue.append(token)

            def my_turn() -> bool:
                return self._queue[0] is token and self.in_use + nbytes <= self.limit

            had_to_wait = not my_turn()
            try:
                await self._changed.wait_for(my_turn)
                self.in_use += nbytes
                self.peak = max(self.peak, self.in_use)
            finally:
                self._queue.remove(token)
                # The next in line may fit now (we took our bytes or left the queue).
                self._changed.notify_all()
        waited = time.monotonic() - started
        if had_to_wait:
            self.waits += 1
            self.longest_wait = max(self.longest_wait, waited)
        return waited

    async def no_waiters(self) -> None:
        """Return once no reservation is waiting."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._queue)

    async def release(self, nbytes: int) -> None:
        # Shielded: a cancelled job must still give its bytes back, and the lock's wait is short.
        await asyncio.shield(self._give_back(max(0, nbytes)))

    async def _give_back(self, nbytes: int) -> None:
        async with self._changed:
            self.in_use -= nbytes
            self._changed.notify_all()


def answer_bytes(catalog: Catalog, spec: GenerationSpec) -> int:
    """The memory one answer of the job's model and size can take (the catalog's figure; the
    largest figure it has for a model or size without one). A hedged job may hold two answers
    at once (its primary and the route asked after hedge_after_s)."""
    info = catalog.models.get(spec.model_alias)
    figure = info.memory_bytes.get(normalize_size(spec.size)) if info is not None else None
    if figure is None:
        figure = max((n for m in catalog.models.values() for n in m.memory_bytes.values()), default=0)
    return figure * (2 if spec.hedge_after_s is not None else 1)


def check_fits_memory(catalog: Catalog, spec: GenerationSpec, limit_bytes: int | None) -> None:
    """At submit: refuse an image that no worker with this process's IMAGINE_MEMORY_MB could make
    (a worker refuses it too, after the queue, should its own limit be lower still)."""
    needed = answer_bytes(catalog, spec)
    if limit_bytes is not None and needed > limit_bytes:
        raise InvalidRequest(
            f"A {spec.model_alias} {spec.size} image needs {needed / MIB:.0f} MB of the bot's image memory, "
            f"and it allows {limit_bytes / MIB:.0f} MB. Ask for a smaller size."
        )


class JobMemory:
    """What each job reserves of the process's budget, from the catalog's measured figures."""

    def __init__(self, budget: MemoryBudget, catalog: Catalog, metrics: Metrics | None = None) -> None:
        self.budget = budget
        # Flex jobs hold their bytes through calls of up to 15 minutes: they first take their
        # share of half the budget, so the other half stays the Standard lane's (a Flex job
        # bigger than that half takes the whole budget only, as it could never run otherwise).
        self._flex_share = MemoryBudget(max(1, budget.limit // 2))
        self._catalog = catalog
        self._metrics = metrics
        self._held: dict[tuple[int, int], tuple[int, bool]] = {}  # (job, attempt) -> (bytes, in the Flex share)
        if metrics is not None:
            metrics.memory_limit.set(budget.limit)
            metrics.memory_reserved.set_function(lambda: budget.in_use)

    def answer_bytes(self, spec: GenerationSpec) -> int:
        return answer_bytes(self._catalog, spec)

    @property
    def flex_waiting(self) -> int:
        return self._flex_share.waiting

    def needed(self, spec: GenerationSpec, inputs: list[InputImage]) -> int:
        return self.answer_bytes(spec) + INPUT_COPIES * sum(len(image.data) for image in inputs)

    async def before_lease(self, stop: asyncio.Event) -> bool:
        """Wait to lease another job while one waits for memory; False when `stop` ended the wait.
        Waiters are served in order, so a job leased now would only queue behind it, holding a
        lease that another worker process with room could have taken."""
        if not self.budget.waiting:
            return True
        waits = [asyncio.ensure_future(self.budget.no_waiters()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        return not stop.is_set()

    async def acquire(self, job: Job, load_inputs: Callable[[Job], Awaitable[list[InputImage]]]) -> list[InputImage]:
        """Wait for room for the job's call and hold it until release(job); the job's inputs.

        The caller's lease heartbeat keeps running while it waits, and a wait is no attempt: the
        job's one call happens after it. A job that can never fit raises TooBigForMemory (a
        ProviderError that made no call). Inputs are weighed, let go while waiting (they would
        be memory outside the budget) and read again once there is room."""
        inputs = await load_inputs(job)
        needed = self.needed(job.spec, inputs)
        if not self.budget.fits(needed):
            raise TooBigForMemory(
                f"a {job.spec.model_alias} {job.spec.size} image needs {needed / MIB:.0f} MB of image memory "
                f"and this worker allows {self.budget.limit / MIB:.0f} MB (IMAGINE_MEMORY_MB)"
            )
        had_inputs = bool(inputs)
        inputs = []
        flex = job.spec.lane is Lane.FLEX and self._flex_share.fits(needed)
        waited = await self._flex_share.acquire(needed) if flex else 0.0
        try:
            waited += await self.budget.acquire(needed)
        except BaseException:
            if flex:
                await self._flex_share.release(needed)
            raise
        self._held[job.id, job.attempt] = needed, flex
        if self._metrics is not None:
            self._metrics.memory_wait.observe(waited)
        return await load_inputs(job) if had_inputs else []

    async def release(self, job: Job) -> None:
        """Give back what acquire(job) holds; nothing when it holds nothing (it failed, or was
        cancelled while waiting)."""
        held, flex = self._held.pop((job.id, job.attempt), (0, False))
        if held:
            await self.budget.release(held)
        if flex:
            await self._flex_share.release(held)

    @asynccontextmanager
    async def running(
        self, job: Job, load_inputs: Callable[[Job], Awaitable[list[InputImage]]]
    ) -> AsyncIterator[list[InputImage]]:
        """acquire() and release() around a block."""
        try:
            yield await self.acquire(job, load_inputs)
        finally:
            await self.release(job)
