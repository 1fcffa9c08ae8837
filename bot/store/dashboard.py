"""The web dashboard's own rows: one-time sign-in links claimed, and its reads of the ledger."""

from __future__ import annotations

from typing import Any

from bot.store.tx import Operations, Tx, reads, writes


class DashboardOperations(Operations):
    @writes
    async def use_sign_in_link(self, tx: Tx, link_id: str, team: str, user: str, expires_at: float) -> bool:
        now = self._clock()
        await tx.run("prune_sign_in_links", now=now)
        claimed = await tx.run(
            "use_sign_in_link", link_id=link_id, team=team, user=user, now=now, expires_at=expires_at
        )
        return claimed == 1

    @reads
    async def daily_spend_by_model(self, tx: Tx, team: str, since: float) -> list[dict[str, Any]]:
        return [
            {"day": float(r["day"]), "model": r["model"], "micros": int(r["micros"])}
            for r in await tx.all("daily_spend_by_model", team=team, since=since)
        ]

    @reads
    async def top_spenders(self, tx: Tx, team: str, since: float, limit: int) -> dict[str, list[tuple[str, int]]]:
        return {
            by: [
                (r["name"], int(r["micros"]))
                for r in await tx.all(f"spend_by_{by}", team=team, since=since, limit=limit)
            ]
            for by in ("user", "channel")
        }
