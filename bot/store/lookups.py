"""What callers read about jobs and their images: one job, its place in the queue, its
images, an earlier result to serve when every route is down, and counts for health and alerts."""

from __future__ import annotations

from bot.store.tx import Operations, Tx, image, job, reads
from bot.types import EarlierResult, Job, StoredImage


class LookupOperations(Operations):
    @reads
    async def stale_result(self, tx: Tx, team: str, cache_key: str) -> EarlierResult | None:
        hit = await tx.one("stale_hit", cache_key=cache_key, team=team)
        found = hit and await tx.one("image", id=hit["result_image_id"])
        if hit is None or not found:
            return None
        return EarlierResult(hit["id"], image(found), hit["result"], hit["finished_at"])

    @reads
    async def get_job(self, tx: Tx, job_id: int) -> Job | None:
        row = await tx.one("get_job", id=job_id)
        return job(row) if row else None

    @reads
    async def position(self, tx: Tx, job_id: int) -> int | None:
        return await tx.value("position", id=job_id)

    @reads
    async def error_counts(self, tx: Tx, since: float) -> dict[str, int]:
        return {r["error_class"]: r["n"] for r in await tx.all("error_counts", since=since)}

    @reads
    async def counts_by_state(self, tx: Tx) -> dict[str, int]:
        return {r["state"]: r["n"] for r in await tx.all("counts_by_state")}

    @reads
    async def get_image(self, tx: Tx, image_id: int) -> StoredImage | None:
        row = await tx.one("image", id=image_id)
        return image(row) if row else None

    @reads
    async def job_inputs(self, tx: Tx, job_id: int) -> list[StoredImage]:
        return [image(r) for r in await tx.all("job_inputs", job_id=job_id)]
