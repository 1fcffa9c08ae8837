"""Approvals ([Ask a moderator]): the refused request kept until a moderator answers it.

Each state change is one conditional UPDATE, so of two presses at once (in two processes
alike) exactly one changes the row. Approving is not here: it is claimed in the
transaction that inserts the approved job (LedgerOperations._admit), so an approval and
its job are one commit. Denying and expiring queue the requester's notice (an outbox row
of kind "notice") in the transaction that decides it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.store.approval_rows import drop_pictures
from bot.store.outbox import OutboxOperations
from bot.store.tx import Json, Row, Tx, reads, writes
from bot.types import NewDelivery

# Words for the requester, from the approval's row (bot/approvals.py words them).
Wording = Callable[[Row], str]


class ApprovalOperations(OutboxOperations):
    @writes
    async def offer_approval(
        self,
        tx: Tx,
        token: str,
        asked: tuple[str, str, str, str],
        request: dict[str, Any],
        estimate_micros: int,
        budget_state: str,
        ttl_seconds: float,
    ) -> None:
        now = self._clock()
        team, platform, channel, user = asked
        await tx.run("approvals_drop_offers", now=now)  # the offers nobody took up, while we are here
        await tx.run(
            "insert_approval",
            token=token,
            team=team,
            platform=platform,
            channel=channel,
            user=user,
            request=Json(request),
            estimate_micros=estimate_micros,
            budget_state=budget_state,
            now=now,
            expires_at=now + ttl_seconds,
        )

    @reads
    async def approval(self, tx: Tx, token: str) -> Row | None:
        return await tx.one("approval", token=token)

    @writes
    async def ask_approval(self, tx: Tx, token: str, user: str, ttl_seconds: float) -> Row | None:
        now = self._clock()
        return await tx.one("approval_ask", token=token, user=user, now=now, expires_at=now + ttl_seconds)

    @writes
    async def unask_approval(self, tx: Tx, token: str) -> bool:
        """Pending back to offered (its alert could not be posted); whether it was pending."""
        return bool(await tx.run("approval_unask", token=token))

    @writes
    async def deny_approval(self, tx: Tx, token: str, by: str, notice: Wording) -> Row | None:
        now = self._clock()
        row = await tx.one("approval_deny", token=token, by=by, now=now)
        if row is not None:
            await self._notice(tx, row, notice(row), now)
            await drop_pictures(tx, row)
        return row

    @writes
    async def expire_approvals(self, tx: Tx, notice: Wording) -> list[Row]:
        now = self._clock()
        rows = await tx.all("approvals_expire", now=now)
        for row in rows:
            await self._notice(tx, row, notice(row), now)
            await drop_pictures(tx, row)
        await tx.run("approvals_drop_offers", now=now)
        return rows

    async def _notice(self, tx: Tx, row: Row, text: str, now: float) -> None:
        where = row["request"].get("delivery") or {}
        await self._insert_delivery(
            tx,
            None,
            row["platform"],
            NewDelivery(
                f"approval:{row['token']}:{row['state']}",
                "notice",
                {"channel": row["channel"], "user": row["user"], "thread_ts": where.get("thread_ts"), "text": text},
            ),
            now,
        )
