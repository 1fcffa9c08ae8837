"""The store: every operation written once (bot/store/queue.py, lookups.py, batches.py, ledger.py,
outbox.py, chat.py, queue_board.py, gallery.py, retention.py, orgs.py), over a thin connector per database
(bot/store/sqlite.py, bot/store/postgres.py) and the named SQL in bot/store/sql."""

from __future__ import annotations

from bot.store.approvals import ApprovalOperations
from bot.store.batches import BatchOperations
from bot.store.gallery import GalleryOperations
from bot.store.orgs import OrgOperations
from bot.store.queue_board import QueueBoardOperations
from bot.store.retention import RetentionOperations
from bot.store.tx import JOBS, OUTBOX, Tx


async def write_probe(tx: Tx) -> None:
    """One small write (see the write_probe query): /healthz's check."""
    await tx.run("write_probe")


class StoreManager(
    BatchOperations, QueueBoardOperations, GalleryOperations, RetentionOperations, OrgOperations, ApprovalOperations
):
    """A Store (bot/store/ports.py) over whichever connector it is given."""

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def applied_migrations(self) -> list[str]:
        return await self._db.applied_migrations()

    async def check_writable(self) -> None:
        """Raise StoreUnavailable unless a write can commit now: reads alone go on while a
        SQLite file is locked by another writer past the busy timeout, or its disk is full."""
        await self._db.transact(write_probe, write=True)

    async def wait_for_jobs(self, timeout: float) -> None:
        """Return when a job may have become runnable in another process, or after `timeout` seconds."""
        await self._db.wait(JOBS, timeout)

    async def wait_for_deliveries(self, timeout: float) -> None:
        """Return when a delivery may have been queued, or after `timeout` seconds."""
        await self._db.wait(OUTBOX, timeout)
