"""Retention: pruning old rows a batch at a time, and how big the database is.

Each kind (PRUNE_KINDS) is one operation over one transaction of at most `limit` rows, so a
pruner never holds SQLite's write lock, or many PostgreSQL row locks, for long; the caller
(bot/retention.py) repeats it until a batch comes back short. Rows are picked {skip_locked}
and every change is guarded by the state it changes, so pruners in several processes take
different rows and count each one once. The ledger is never touched: money history stays.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.store.tx import Operations, Tx, reads, writes
from bot.types import StorageSizes


async def _images(tx: Tx, picked: str, before: float, limit: int, now: float) -> int:
    """Drop the bytes of the images `picked` names, as delete_image does: chat threads stop
    pointing at them, the prompt cache stops serving them, each row stays as a tombstone,
    and a blob goes only when no image still holds the same content."""
    rows = await tx.all(picked, before=before, limit=limit)
    if not rows:
        return 0
    ids = [r["id"] for r in rows]
    shas = sorted({r["sha256"] for r in rows if r["sha256"]})
    await tx.all("prune_lock_blobs", shas=shas)
    await tx.run("prune_unlink_threads", ids=ids)
    await tx.run("prune_uncache", ids=ids)
    pruned = await tx.run("prune_tombstone", ids=ids, now=now)
    await tx.run("prune_unneeded_blobs", shas=shas)
    return pruned


async def _outputs(tx: Tx, before: float, limit: int, now: float) -> int:
    return await _images(tx, "prune_images_pick", before, limit, now)


async def _inputs(tx: Tx, before: float, limit: int, now: float) -> int:
    return await _images(tx, "prune_inputs_pick", before, limit, now)


async def _jobs(tx: Tx, before: float, limit: int, now: float) -> int:
    ids = [r["id"] for r in await tx.all("prune_jobs_pick", before=before, limit=limit)]
    if not ids:
        return 0
    await tx.run("prune_jobs_outbox", ids=ids)
    await tx.run("prune_jobs_inputs", ids=ids)
    return await tx.run("prune_jobs", ids=ids)


def _picked_then_deleted(pick: str, delete: str) -> Callable[[Tx, float, int, float], Awaitable[int]]:
    async def prune(tx: Tx, before: float, limit: int, now: float) -> int:
        ids = [r["id"] for r in await tx.all(pick, before=before, limit=limit)]
        return await tx.run(delete, ids=ids) if ids else 0

    return prune


def _statement(name: str) -> Callable[[Tx, float, int, float], Awaitable[int]]:
    async def prune(tx: Tx, before: float, limit: int, now: float) -> int:
        return await tx.run(name, before=before, limit=limit)

    return prune


async def _rate_slots(tx: Tx, before: float, limit: int, now: float) -> int:
    # Few rows (each key's are pruned as it is counted): no batch needed.
    return await tx.run("retire_rate_slots", before=before)


PRUNERS: dict[str, Callable[[Tx, float, int, float], Awaitable[int]]] = {
    "images": _outputs,
    "inputs": _inputs,
    "jobs": _jobs,
    "batches": _picked_then_deleted("prune_batches_pick", "prune_batches"),
    "outbox": _picked_then_deleted("prune_outbox_pick", "prune_outbox"),
    "confirmations": _statement("retire_confirmations"),
    "sign_in_links": _statement("retire_sign_in_links"),
    "rate_slots": _rate_slots,
    "idempotency_keys": _statement("prune_idempotency_keys"),
    "moderation_text": _statement("prune_moderation_text"),
    "approvals": _statement("prune_approvals"),
}
PRUNE_KINDS = tuple(PRUNERS)


class RetentionOperations(Operations):
    # The SQLite file (its size and its disk are measured beside it); None for a server.
    database_file: str | None = None

    @writes
    async def prune(self, tx: Tx, kind: str, before: float, limit: int) -> int:
        return await PRUNERS[kind](tx, before, limit, self._clock())

    @reads
    async def inputs_pruned(self, tx: Tx, job_id: int) -> bool:
        return bool(await tx.value("inputs_pruned", job_id=job_id))

    @reads
    async def storage_sizes(self, tx: Tx) -> StorageSizes:
        database = await tx.one("database_size")
        blobs = await tx.one("blob_bytes")
        assert database is not None and blobs is not None
        tables = {r["name"]: int(r["bytes"]) for r in await tx.all("table_sizes")}
        return StorageSizes(
            int(database["bytes"]), int(blobs["bytes"]), int(blobs["blobs"]), database["detail"], tables
        )
