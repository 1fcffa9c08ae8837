"""The overview's savings: what the prompt cache and the relaxed lanes (Flex, Batch) kept off the bill."""

from __future__ import annotations

from bot.store.tx import Operations, Tx, reads


class SavingsOperations(Operations):
    @reads
    async def cache_savings(self, tx: Tx, team: str, since: float) -> int:
        return int(await tx.value("cache_savings", team=team, since=since) or 0)

    @reads
    async def relaxed_charges(self, tx: Tx, team: str, since: float) -> list[tuple[str, str, int]]:
        return [
            (r["model"], r["lane"], int(r["micros"])) for r in await tx.all("relaxed_charges", team=team, since=since)
        ]
