"""The delivery outbox: messages for the adapters, queued in the transaction that decides them."""

from __future__ import annotations

from bot.store.tx import OUTBOX, Json, Operations, Tx, reads, writes
from bot.types import Delivery, NewDelivery


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
        now = self._clock()
        ids = [r["id"] for r in await tx.all("claim_pick", platforms=platforms, now=now, limit=limit)]
        if not ids:
            return []
        rows = await tx.all("claim_take", until=now + lease_seconds, ids=ids)
        return [
            Delivery(r["id"], r["key"], r["job_id"], r["platform"], r["kind"], r["payload"], r["attempts"])
            for r in sorted(rows, key=lambda r: r["id"])
        ]

    @reads
    async def pending_deliveries(self, tx: Tx) -> int:
        return await tx.value("outbox_pending")

    @writes
    async def mark_delivered(self, tx: Tx, delivery_id: int) -> None:
        await tx.run("mark_delivered", now=self._clock(), id=delivery_id)

    @writes
    async def retry_delivery(self, tx: Tx, delivery_id: int, error: str, retry_at: float, max_attempts: int) -> None:
        await tx.run("retry_delivery", error=error[:2000], retry_at=retry_at, max_attempts=max_attempts, id=delivery_id)
