"""A team's money as the service reports and changes it: what its members spent,
every budget's status (the default team budget included), and setting a budget.

Who may ask (the allow-list, moderators) is the service's business; the
limits are bot.money's; this module reads and writes them through the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.access import Caller
from bot.ledger_view import LedgerFilter
from bot.money import to_micros
from bot.money.admission import with_default_team_budget
from bot.money.budgets import Budget, BudgetStatus, Period, Scope, budget_from_input, period_start
from bot.store.ports import Store
from policies.config import PolicyBook


@dataclass(frozen=True)
class UsageReport:
    team: str
    user: str
    user_spent_today_micros: int
    user_spent_month_micros: int
    team_spent_month_micros: int
    budgets: list[BudgetStatus]
    # What moderators' approvals let past the team's budgets this month ([Ask a moderator]).
    team_overage_month_micros: int = 0


class BudgetDesk:
    def __init__(self, store: Store, policies: PolicyBook, clock: Callable[[], float]) -> None:
        self._store = store
        self._policies = policies
        self._clock = clock

    def default_team_budget(self, team: str) -> Budget | None:
        """The budget that caps a team with no team budget of its own."""
        policy = self._policies.for_team(team)
        return Budget(
            team=team,
            scope=Scope.TEAM,
            scope_id="",
            limit_micros=to_micros(policy.default_team_budget_usd),
            period=Period.MONTH,
            soft_threshold=float(policy.soft_threshold),
            default=True,
        )

    async def has_own_team_budget(self, team: str) -> bool:
        return any(b.scope is Scope.TEAM for b in await self._store.budgets(team))

    async def usage(self, team: str, user: str, channel: str | None) -> UsageReport:
        now = self._clock()
        return UsageReport(
            team=team,
            user=user,
            user_spent_today_micros=await self._store.spent(team, user=user, since=period_start(Period.DAY, now)),
            user_spent_month_micros=await self._store.spent(team, user=user, since=period_start(Period.MONTH, now)),
            team_spent_month_micros=await self._store.spent(team, since=period_start(Period.MONTH, now)),
            budgets=await self._store.budget_statuses(team, channel, user, self.default_team_budget(team)),
            team_overage_month_micros=await self._store.overage_spent(team, since=period_start(Period.MONTH, now)),
        )

    async def daily_spend(self, team: str, days: int) -> list[dict[str, Any]]:
        """What the team was charged per UTC day and model, over the last `days` days (today included)."""
        since = period_start(Period.DAY, self._clock()) - (days - 1) * 86400
        return await self._store.daily_spend_by_model(team, since)

    async def top_spenders(self, team: str, limit: int) -> dict[str, list[tuple[str, int]]]:
        """This month's biggest spenders of the team, by user and by channel."""
        return await self._store.top_spenders(team, period_start(Period.MONTH, self._clock()), limit)

    async def statuses(self, team: str) -> list[BudgetStatus]:
        """Every budget of the team (the default team budget when it has none of its own), figured now."""
        statuses = []
        default = self.default_team_budget(team)
        for budget in with_default_team_budget(await self._store.budgets(team), default):
            channel = budget.scope_id if budget.scope is Scope.CHANNEL else None
            user = budget.scope_id if budget.scope is Scope.USER else None
            statuses += [
                s for s in await self._store.budget_statuses(team, channel, user, default) if s.budget == budget
            ]
        return statuses

    async def set(
        self,
        caller: Caller,
        amount_usd: str | Decimal,
        period: str,
        *,
        scope: Scope,
        scope_id: str,
        soft_threshold: float | None,
    ) -> Budget:
        """Set a budget as typed (InvalidRequest when it makes no sense); the alert threshold
        defaults to the team's policy. The store records the change, and who made it, in the audit."""
        team = caller.team
        if soft_threshold is None:
            soft_threshold = float(self._policies.for_team(team).soft_threshold)
        budget = budget_from_input(
            team, amount_usd, period, scope=scope, scope_id=scope_id, soft_threshold=soft_threshold
        )
        await self._store.set_budget(budget, updated_by=caller.user, platform=caller.platform)
        return budget

    async def changes(self, team: str, limit: int) -> list[dict[str, Any]]:
        """The team's last budget changes, newest first (the store's audit rows)."""
        return await self._store.budget_changes(team, limit)

    async def ledger(self, team: str, filters: LedgerFilter, *, limit: int, offset: int) -> list[dict[str, Any]]:
        """The team's ledger rows matching `filters`, newest first."""
        return await self._store.ledger_rows(team, filters, limit=limit, offset=offset)
