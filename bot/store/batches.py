"""The Batch lane: relaxed jobs gathered into provider batches, polled until they close."""

from __future__ import annotations

from bot.store.batch_sizing import BATCH_INLINE_BYTES, fitting, inline_request_bytes
from bot.store.queue import QueueOperations
from bot.store.tx import Json, Row, Tx, job, writes
from bot.types import Batch, NewDelivery, batch_worker


class BatchOperations(QueueOperations):
    @writes
    async def open_batch(self, tx: Tx, limit: int, max_bytes: int = BATCH_INLINE_BYTES) -> Batch | None:
        now = self._clock()
        await self._cancel_unannounced(tx, now)
        model_id = await tx.value("batch_first_model", now=now)
        if model_id is None:
            return None
        candidates = await tx.all("batch_candidates", now=now, model_id=model_id, limit=limit)
        ids = fitting(
            ((r["id"], inline_request_bytes(r["image_bytes"], r["images"], r["prompt"])) for r in candidates), max_bytes
        )
        batch_id = await tx.value("insert_batch", model_id=model_id, job_ids=Json([]), now=now)
        rows = await tx.all("batch_take_jobs", worker=batch_worker(batch_id), batch_id=batch_id, now=now, ids=ids)
        return Batch(batch_id, model_id, "creating", None, now, (), _jobs(rows))

    @writes
    async def split_batch(self, tx: Tx, batch_id: int, job_ids: list[int]) -> Batch:
        now = self._clock()
        old = await tx.one("batch_to_split", id=batch_id)
        if old is None:
            raise ValueError(f"batch {batch_id} is not being created: it cannot be split")
        new_id = await tx.value("insert_batch", model_id=old["model_id"], job_ids=Json([]), now=now)
        rows = await tx.all(
            "batch_move_jobs",
            worker=batch_worker(new_id),
            batch_id=new_id,
            now=now,
            old_batch_id=batch_id,
            old_worker=batch_worker(batch_id),
            ids=job_ids,
        )
        moved = {r["id"] for r in rows}
        # The old batch's request order no longer names them.
        await tx.run(
            "batch_set_job_ids", job_ids=Json([i for i in old["job_ids"] if i not in moved]), now=now, id=batch_id
        )
        return Batch(new_id, old["model_id"], "creating", None, now, (), _jobs(rows))

    @writes
    async def batch_sending(self, tx: Tx, batch_id: int, job_ids: list[int]) -> None:
        await tx.run("batch_set_job_ids", job_ids=Json(job_ids), now=self._clock(), id=batch_id)

    @writes
    async def batch_submitted(self, tx: Tx, batch_id: int, remote_name: str, poll_at: float) -> bool:
        now = self._clock()
        if await tx.value("batch_submitted", remote_name=remote_name, now=now, poll_at=poll_at, id=batch_id) is None:
            return False  # given back meanwhile: its jobs are queued again
        for row in await _batch_jobs(tx, batch_id):
            await self._insert_delivery(
                tx,
                row["id"],
                row["platform"],
                NewDelivery(
                    key=f"job:{row['id']}:started:{row['attempt']}",
                    kind="started",
                    payload={"attempt": row["attempt"], "batch": remote_name},
                ),
                now,
            )
        return True

    @writes
    async def due_batches(self, tx: Tx, poll_interval: float, stale_after: float) -> list[Batch]:
        now = self._clock()
        # Pushed forward under a row lock: concurrent pollers each get different batches.
        ids = [r["id"] for r in await tx.all("due_batches_pick", now=now, stale_before=now - stale_after)]
        if not ids:
            return []
        rows = await tx.all("due_batches_push", next_poll_at=now + poll_interval, ids=ids)
        return [
            Batch(
                r["id"],
                r["model_id"],
                r["state"],
                r["remote_name"],
                r["created_at"],
                tuple(r["job_ids"]),
                _jobs(await _batch_jobs(tx, r["id"])),
            )
            for r in sorted(rows, key=lambda r: r["id"])
        ]

    @writes
    async def close_batch(self, tx: Tx, batch_id: int, remote_state: str) -> None:
        await tx.run("close_batch", remote_state=remote_state, now=self._clock(), id=batch_id)


async def _batch_jobs(tx: Tx, batch_id: int) -> list[Row]:
    """The batch's jobs still waiting on it (not yet finished, not retried elsewhere)."""
    return await tx.all("batch_jobs", batch_id=batch_id, worker=batch_worker(batch_id))


def _jobs(rows: list[Row]) -> tuple:
    return tuple(job(r) for r in sorted(rows, key=lambda r: r["id"]))
