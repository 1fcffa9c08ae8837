"""Chat context: a job's platform context, threads, pending confirmations and shared rate slots."""

from __future__ import annotations

from typing import Any

from bot.store.tx import JOBS, Json, Operations, Tx, reads, writes
from bot.types import JobState


class ChatOperations(Operations):
    @writes
    async def attach_delivery(self, tx: Tx, job_id: int, context: dict[str, Any]) -> bool:
        row = await tx.one("delivery_context", id=job_id)
        if row is None:
            return False
        await tx.run("set_delivery_context", delivery=Json({**row["delivery"], **context}), id=job_id)
        if row["state"] == JobState.QUEUED.value:
            await tx.notify(JOBS)
        return row["state"] != JobState.CANCELLED.value

    @writes
    async def remember_thread(
        self, tx: Tx, platform: str, team: str, channel: str, thread_id: str, image_id: int
    ) -> None:
        await tx.run(
            "upsert_thread",
            platform=platform,
            team=team,
            channel=channel,
            thread_id=thread_id,
            image_id=image_id,
            now=self._clock(),
        )

    @reads
    async def thread_image(self, tx: Tx, platform: str, team: str, channel: str, thread_id: str) -> int | None:
        return await tx.value("thread_image", platform=platform, team=team, channel=channel, thread_id=thread_id)

    @writes
    async def swap_thread_image(
        self, tx: Tx, platform: str, team: str, channel: str, thread_id: str, expected: int, image_id: int
    ) -> bool:
        where = {"platform": platform, "team": team, "channel": channel, "thread_id": thread_id}
        return await tx.run("swap_thread_image", **where, expected=expected, image_id=image_id, now=self._clock()) == 1

    @writes
    async def save_confirmation(
        self, tx: Tx, token: str, team: str, user: str, request: dict[str, Any], ttl_seconds: float
    ) -> None:
        now = self._clock()
        await tx.run("prune_confirmations", now=now)
        await tx.run(
            "insert_confirmation",
            token=token,
            team=team,
            user=user,
            request=Json(request),
            expires_at=now + ttl_seconds,
        )

    @writes
    async def take_confirmation(self, tx: Tx, token: str, team: str, user: str) -> dict[str, Any] | str:
        now = self._clock()
        request = await tx.value("take_confirmation", token=token, team=team, user=user, now=now)
        if request is not None:
            return request
        held = await tx.value("confirmation_held", token=token, now=now)
        return "expired" if held is None else "not_yours"  # left untouched for the person who asked

    @writes
    async def take_rate_slot(self, tx: Tx, key: str, limit: int, window: float) -> float:
        now = self._clock()
        # Every process counting this key queues here, until commit.
        await tx.lock(f"imagine-rate:{key}")
        await tx.run("prune_rate_slots", key=key, before=now - window)
        slots = await tx.one("rate_slots", key=key)
        assert slots is not None
        if slots["n"] < limit:
            await tx.run("take_rate_slot", key=key, now=now)
            return 0.0
        return max(0.01, slots["oldest"] + window - now)
