"""The delivery outbox: messages for the adapters, queued in the transaction that decides them."""

from __future__ import annotations

from bot.store.tx import OUTBOX, Json, Operations, Tx, job, reads, writes
from bot.types import Delivery, Job, NewDelivery


class OutboxOperations(Operations):
    @staticmethod
    async def _insert_delivery(tx: Tx, job_id: int | None, platform: str, delivery: NewDelivery, now: float) -> bool:
        """Queue a delivery (job_id None for an alert); False when its key was already queued."""
        queued = await tx.value(
            "insert_delivery",
            key=delivery.key,
            job_id=job_id,
            platform=platform,
            kind=delivery.kind,
            payload=Json(delivery.payload),
            now=now,
        )
        if queued is None:
            return False
        await tx.notify(OUTBOX)
        return True

    @writes
    async def raise_alert(self, tx: Tx, key: str, platforms: list[str], text: str) -> bool:
        now = self._clock()
        queued = [
            await self._insert_delivery(
                tx, None, platform, NewDelivery(f"{key}:{platform}", "alert", {"text": text}), now
            )
            for platform in platforms
        ]
        return any(queued)

    async def claim_deliveries(self, platforms: list[str], limit: int, lease_seconds: float) -> list[Delivery]:
        if not platforms:
            return []
        return await self._claim(platforms, limit, lease_seconds)

    @writes
    async def _claim(self, tx: Tx, platforms: list[str], limit: int, lease_seconds: float) -> list[Delivery]:
        return await _claim(tx, platforms, limit, self._clock() + lease_seconds, self._clock())

    @writes
    async def claim_for_dispatch(
        self, tx: Tx, platforms: list[str], limit: int, lease_seconds: float, *, delivered: list[int]
    ) -> list[tuple[Delivery, Job | None]]:
        now = self._clock()
        if delivered:
            await tx.run("mark_delivered_many", now=now, ids=delivered)
        claimed = await _claim(tx, platforms, limit, now + lease_seconds, now) if platforms else []
        ids = [d.job_id for d in claimed if d.job_id is not None]
        jobs = {row["id"]: job(row) for row in await tx.all("jobs_by_ids", ids=ids)} if ids else {}
        return [(d, jobs.get(d.job_id) if d.job_id is not None else None) for d in claimed]

    @writes
    async def mark_delivered_many(self, tx: Tx, delivery_ids: list[int]) -> None:
        await tx.run("mark_delivered_many", now=self._clock(), ids=delivery_ids)

    @reads
    async def pending_deliveries(self, tx: Tx) -> int:
        return await tx.value("outbox_pending")

    @writes
    async def mark_delivered(self, tx: Tx, delivery_id: int) -> None:
        await tx.run("mark_delivered", now=self._clock(), id=delivery_id)

    @writes
    async def retry_delivery(self, tx: Tx, delivery_id: int, error: str, retry_at: float, max_attempts: int) -> None:
        await tx.run("retry_delivery", error=error[:2000], retry_at=retry_at, max_attempts=max_attempts, id=delivery_id)


async def _claim(tx: Tx, platforms: list[str], limit: int, until: float, now: float) -> list[Delivery]:
    ids = [r["id"] for r in await tx.all("claim_pick", platforms=platforms, now=now, limit=limit)]
    if not ids:
        return []
    rows = await tx.all("claim_take", until=until, ids=ids)
    return [
        Delivery(r["id"], r["key"], r["job_id"], r["platform"], r["kind"], r["payload"], r["attempts"])
        for r in sorted(rows, key=lambda r: r["id"])
    ]
