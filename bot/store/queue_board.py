"""The queue as a team sees it (the dashboard's queue page): its jobs waiting and running."""

from __future__ import annotations

from bot.store.tx import Operations, Tx, job, reads
from bot.types import Job


class QueueBoardOperations(Operations):
    @reads
    async def team_queue(self, tx: Tx, team: str, limit: int) -> list[tuple[Job, int | None]]:
        return [(job(row), row["queue_position"]) for row in await tx.all("team_queue", team=team, limit=limit)]
