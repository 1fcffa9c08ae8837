"""Slots of one worker asking for a job at the same moment share one lease transaction.

A slot asks (`take`); the asks made before the lease call starts, and those made while it
runs, go together in one Store.lease_many call each: one round trip for several free slots
instead of one each, and never more than one lease call in flight per worker process.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.store.ports import Store
from bot.types import Job

log = logging.getLogger("bot.worker")


@dataclass
class _Ask:
    slot_id: str
    flex: bool
    answer: asyncio.Future[Job | None]


class LeaseBatches:
    def __init__(self, store: Store, lease_seconds: float, only_job_id: int | None):
        self._store = store
        self._lease = lease_seconds
        self._only = only_job_id
        self._asks: list[_Ask] = []
        self._task: asyncio.Task[None] | None = None

    async def take(self, slot_id: str, flex: bool) -> Job | None:
        """The job leased to this slot (a Flex one only when `flex`), or None when none is runnable."""
        ask = _Ask(slot_id, flex, asyncio.get_running_loop().create_future())
        self._asks.append(ask)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._lease_asked())
        return await ask.answer

    async def _lease_asked(self) -> None:
        await asyncio.sleep(0)  # the other slots freed in this same turn ask too
        while self._asks:
            asks, self._asks = self._asks, []
            try:
                jobs = await self._store.lease_many(
                    [(a.slot_id, a.flex) for a in asks], self._lease, only_job_id=self._only
                )
            except Exception as exc:  # each slot handles it as it would its own call's
                for ask in asks:
                    if not ask.answer.done():
                        ask.answer.set_exception(exc)
                continue
            leased = {job.worker_id: job for job in jobs}
            for ask in asks:
                job = leased.get(ask.slot_id)
                if not ask.answer.done():
                    ask.answer.set_result(job)
                elif job is not None:
                    log.warning("job %d: leased for a slot that stopped; it comes back when its lease lapses", job.id)
