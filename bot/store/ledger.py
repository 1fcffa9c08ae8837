"""The ledger and budgets: holds taken at admission, settled per billed call, released at the end.

bot/money decides (admission_denial, over_budget); these operations read what it
needs and write what it decided, inside the caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from bot.ledger_view import LedgerFilter
from bot.money.admission import (
    APPROVAL_ANSWERED,
    QUOTA_COUNTS,
    Admission,
    Charge,
    Denied,
    admission_denial,
    held_default_budget,
    over_budget,
    with_default_team_budget,
)
from bot.money.budgets import Budget, BudgetStatus, Period, Scope, next_reset, period_start
from bot.money.quotas import QuotaLimits
from bot.store.approval_rows import drop_pictures
from bot.store.tx import Operations, Row, Tx, budget, reads, who, writes
from bot.types import NewJob

log = logging.getLogger(__name__)


class LedgerOperations(Operations):
    async def _admit(
        self, tx: Tx, job: NewJob, admission: Admission, now: float, *, costs: bool = True
    ) -> Denied | None:
        """Why `job` may not be admitted, or None; `costs=False` (a cache hit) checks the quotas alone.
        The caller holds the team's lock: no other admission for the team interleaves."""
        current = await _quota_counts(tx, job.team, job.user, admission.quotas, now)
        statuses = []
        if costs and admission.approved_by is None:
            statuses = await self._statuses(
                tx, job.team, job.channel, job.user, now, admission.default_team_budget, admission.extra_budgets
            )
        elif costs:
            # A moderator approves past the team's budgets, never past a person's role limit.
            roles = [b for b in admission.extra_budgets if b.role is not None]
            statuses = await self._statuses(tx, job.team, None, None, now, extra=roles, stored=False)
        denied = admission_denial(statuses, admission.estimate_micros, admission.quotas, current, now)
        if denied is None and admission.approval_token is not None:
            # Claimed last, in the job's own transaction: approved once, and only with its job.
            claimed = await tx.one(
                "approval_approve", token=admission.approval_token, by=admission.approved_by, now=now
            )
            if claimed is None:
                return Denied(APPROVAL_ANSWERED, 0, 0)
            await drop_pictures(tx, claimed)
        return denied

    async def _hold(self, tx: Tx, job_id: int, job: NewJob, admission: Admission, now: float) -> None:
        default = admission.default_team_budget
        await tx.run(
            "insert_hold",
            job_id=job_id,
            team=job.team,
            channel=job.channel,
            user=job.user,
            amount_micros=admission.estimate_micros,
            price_version=admission.price_version,
            default_limit_micros=default.limit_micros if default else None,
            default_period=default.period.value if default else None,
            now=now,
        )
        await _ledger_row(
            tx,
            job_id,
            "reservation",
            0,
            (job.team, job.channel, job.user),
            job.spec.to_json(),
            None,
            admission.estimate_micros,
            "held",
            admission.price_version,
            now,
        )

    async def _settle(
        self, tx: Tx, row: Row, attempt: int, charge: Charge, now: float, *, hedge: int = 0, hold: Row | None = None
    ) -> None:
        """Record what one provider call cost (one row per billed call), at the price version of
        the job's hold (`hold`, when the caller has just released it)."""
        price_version = hold["price_version"] if hold else await tx.value("hold_price_version", job_id=row["id"])
        await _ledger_row(
            tx,
            row["id"],
            "settlement",
            attempt,
            who(row),
            row["request"],
            charge.usage,
            charge.cost_micros,
            charge.status,
            price_version or "unmetered",
            now,
            hedge,
        )

    async def _close_hold(self, tx: Tx, row: Row, charge: Charge | None, now: float) -> None:
        """Settle what the last attempt was charged and release the rest of the job's hold."""
        # The hold is taken first (one statement fewer: it names the settlement's price version);
        # what is released is still worked out after the settlement, from every charge.
        hold = await tx.one("release_hold", job_id=row["id"])
        if charge is not None:
            await self._settle(tx, row, row["attempt"], charge, now, hold=hold)
        if hold is None:
            return
        charged = await tx.value("job_charged", job_id=row["id"])
        if charged > hold["amount_micros"]:
            over_hold(row["id"], charged, hold["amount_micros"])
        await _ledger_row(
            tx,
            row["id"],
            "release",
            0,
            who(row),
            row["request"],
            None,
            max(0, hold["amount_micros"] - charged),
            "released",
            hold["price_version"],
            now,
        )

    async def _settle_lost_attempt(self, tx: Tx, job_id: int, attempt: int, charge: Charge | None, now: float) -> None:
        # The lease moved on, but Google billed this call all the same.
        row = await tx.one("job_row", id=job_id)
        if charge is not None and row is not None:
            await self._settle(tx, row, attempt, charge, now)

    async def _billed_retry_fits(self, tx: Tx, row: Row, attempt: int, charge: Charge, now: float) -> str | None:
        """Settle a billed attempt about to be retried; why the retry, with its hold, no longer fits
        (None: it fits). Checked under the team's lock, as admission is, so no submit slips in meanwhile."""
        await tx.lock(f"imagine-team:{row['team']}")
        await self._settle(tx, row, attempt, charge, now)
        if row["request"].get("approved_by"):
            # An approved overage was let past its budgets for what the moderator saw: the one
            # estimate it holds. A retry holds that estimate again, so it fits only while nothing
            # is settled yet (this attempt's charge included).
            if await tx.value("job_charged", job_id=row["id"]) == 0:
                return None
            return "a billed attempt used up what the moderator approved, so it was not retried"
        # The default team budget it was admitted under still caps it.
        hold = await tx.one("hold_default_budget", job_id=row["id"])
        default = (
            held_default_budget(row["team"], hold["default_limit_micros"], hold["default_period"]) if hold else None
        )
        if over_budget(await self._statuses(tx, row["team"], row["channel"], row["user"], now, default)):
            return "a billed attempt used up the budget, so it was not retried"
        return None

    async def _statuses(
        self,
        tx: Tx,
        team: str,
        channel: str | None,
        user: str | None,
        now: float,
        default: Budget | None = None,
        extra: Sequence[Budget] = (),
        *,
        stored: bool = True,
    ) -> list[BudgetStatus]:
        """The status of each budget binding a request: the stored rows and the team default
        (unless `stored` is False), and `extra`."""
        rows = await tx.all("applicable_budgets", team=team, channel=channel, user=user) if stored else []
        statuses = []
        for each in [*(with_default_team_budget([budget(r) for r in rows], default) if stored else []), *extra]:
            usage = await tx.one(
                "budget_usage",
                team=team,
                scope=each.scope.value,
                scope_id=each.scope_id,
                since=period_start(each.period, now),
            )
            assert usage is not None
            statuses.append(BudgetStatus(each, usage["spent"], usage["held"], next_reset(each.period, now)))
        return statuses

    @writes
    async def set_budget(self, tx: Tx, budget: Budget, updated_by: str, platform: str = "") -> None:
        now = self._clock()
        old = await tx.one("budget_row", team=budget.team, scope=budget.scope.value, scope_id=budget.scope_id)
        await tx.run(
            "upsert_budget",
            team=budget.team,
            scope=budget.scope.value,
            scope_id=budget.scope_id,
            limit_micros=budget.limit_micros,
            period=budget.period.value,
            soft_threshold=budget.soft_threshold,
            updated_by=updated_by,
            now=now,
        )
        await _audit(tx, budget.team, budget.scope, budget.scope_id, (updated_by, platform), old, budget, now)

    @writes
    async def delete_budget(
        self, tx: Tx, team: str, scope: Scope, scope_id: str, removed_by: str = "", platform: str = ""
    ) -> bool:
        old = await tx.one("budget_row", team=team, scope=scope.value, scope_id=scope_id)
        if old is None:
            return False
        await tx.run("delete_budget", team=team, scope=scope.value, scope_id=scope_id)
        await _audit(tx, team, scope, scope_id, (removed_by, platform), old, None, self._clock())
        return True

    @reads
    async def budget_changes(self, tx: Tx, team: str, limit: int) -> list[dict[str, Any]]:
        return await tx.all("budget_audit", team=team, limit=limit)

    @reads
    async def ledger_rows(self, tx: Tx, team: str, filters: LedgerFilter, *, limit: int, offset: int = 0) -> list[Row]:
        return await tx.all("ledger_filtered", team=team, **asdict(filters), limit=limit, offset=offset)

    @reads
    async def budgets(self, tx: Tx, team: str) -> list[Budget]:
        return [budget(r) for r in await tx.all("team_budgets", team=team)]

    @reads
    async def budget_statuses(
        self,
        tx: Tx,
        team: str,
        channel: str | None,
        user: str | None,
        default_team_budget: Budget | None = None,
        extra_budgets: Sequence[Budget] = (),
    ) -> list[BudgetStatus]:
        return await self._statuses(tx, team, channel, user, self._clock(), default_team_budget, extra_budgets)

    @reads
    async def quota_counts(self, tx: Tx, team: str, user: str, quotas: QuotaLimits) -> dict[str, int]:
        return await _quota_counts(tx, team, user, quotas, self._clock())

    @reads
    async def spent(self, tx: Tx, team: str, *, user: str | None = None, since: float) -> int:
        # No user, None or "", means the whole team (as the stores always read it).
        return await tx.value("spent", team=team, user=user or None, since=since)

    @reads
    async def overage_spent(self, tx: Tx, team: str, *, user: str | None = None, since: float) -> int:
        """What approved overages were charged since `since` (a part of `spent`)."""
        return await tx.value("overage_spent", team=team, user=user or None, since=since)

    @writes
    async def record_moderation(
        self, tx: Tx, team: str, channel: str, user: str, reason: str, prompt: str | None
    ) -> None:
        await tx.run(
            "insert_moderation", team=team, channel=channel, user=user, reason=reason, prompt=prompt, now=self._clock()
        )

    @reads
    async def moderation_log(self, tx: Tx, team: str) -> list[dict[str, Any]]:
        return await tx.all("moderation_log", team=team)

    @reads
    async def ledger(
        self, tx: Tx, *, team: str | None = None, since: float | None = None, entry: str | None = None
    ) -> list[dict[str, Any]]:
        if team is not None and entry is not None:
            since = float("-inf") if since is None else since
            return await tx.all("team_ledger_entry", team=team, entry=entry, since=since)
        return await tx.all("ledger", team=team, since=since, entry=entry)


async def _quota_counts(tx: Tx, team: str, user: str, quotas: QuotaLimits, now: float) -> dict[str, int]:
    """The current figure of each quota that has a limit (admission_denial's `current`)."""
    day_start = period_start(Period.DAY, now)
    return {
        name: await tx.value(f"quota_{name}", team=team, user=user, day_start=day_start)
        for name in QUOTA_COUNTS
        if getattr(quotas, name) is not None
    }


async def _audit(
    tx: Tx,
    team: str,
    scope: Scope,
    scope_id: str,
    by: tuple[str, str],
    old: Row | None,
    new: Budget | None,
    now: float,
) -> None:
    """Record a budget change (`new` None: removed) in the transaction that makes it."""
    user, platform = by
    await tx.run(
        "insert_budget_audit",
        team=team,
        user=user,
        platform=platform,
        scope=scope.value,
        scope_id=scope_id,
        old_limit_micros=old["limit_micros"] if old else None,
        old_period=old["period"] if old else None,
        old_soft_threshold=old["soft_threshold"] if old else None,
        new_limit_micros=new.limit_micros if new else None,
        new_period=new.period.value if new else None,
        new_soft_threshold=new.soft_threshold if new else None,
        now=now,
    )


def over_hold(job_id: int, charged: int, held: int) -> None:
    log.warning("job %d cost %d micro-USD, more than the %d held for it", job_id, charged, held)


async def _ledger_row(
    tx: Tx,
    job_id: int,
    entry: str,
    attempt: int,
    who: tuple[str, str, str],
    spec: dict[str, Any],
    usage: Any,
    cost_micros: int,
    status: str,
    price_version: str,
    now: float,
    hedge: int = 0,
) -> None:
    team, channel, user = who
    await tx.run(
        "insert_ledger",
        job_id=job_id,
        entry=entry,
        attempt=attempt,
        team=team,
        channel=channel,
        user=user,
        model=spec["model_alias"],
        size=spec["size"],
        lane=spec["lane"],
        prompt_tokens=usage.prompt_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
        image_tokens=usage.image_tokens if usage else None,
        cost_micros=cost_micros,
        status=status,
        price_version=price_version,
        now=now,
        hedge=hedge,
        approved_by=spec.get("approved_by"),
    )
