"""Budgets: periods, remaining money, thresholds. Pure functions and types.

The store applies these atomically (see Store.submit); this module decides
what the figures mean and how a refusal reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from bot.money import to_micros, usd
from bot.types import InvalidRequest

MAX_BUDGET_USD = Decimal(1_000_000)


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class Scope(StrEnum):
    TEAM = "team"
    CHANNEL = "channel"
    USER = "user"


def period_start(period: Period, now: float) -> float:
    """The UTC start of the period containing `now` (weeks start on Monday)."""
    moment = datetime.fromtimestamp(now, UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAY:
        start = day
    elif period is Period.WEEK:
        start = day - timedelta(days=day.weekday())
    else:
        start = day.replace(day=1)
    return start.timestamp()


def next_reset(period: Period, now: float) -> float:
    start = datetime.fromtimestamp(period_start(period, now), UTC)
    if period is Period.DAY:
        end = start + timedelta(days=1)
    elif period is Period.WEEK:
        end = start + timedelta(days=7)
    else:
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return end.timestamp()


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Budget:
    team: str
    scope: Scope
    scope_id: str  # "" for the team itself, else the channel or user id
    limit_micros: int
    period: Period
    soft_threshold: float = 0.8
    # The `[policy] default_team_budget_usd` cap of a team that has set no budget
    # of its own: not a stored row, but checked and held exactly like one.
    default: bool = False
    # A role's per-user `user_daily_usd` (policies/roles.py): not a stored row either, but
    # held like one; the role names the refusal. Its alert line is the limit itself.
    role: str | None = None

    def label(self) -> str:
        if self.scope is Scope.TEAM:
            return "default team" if self.default else "team"
        return f"{self.scope.value} {self.scope_id}"


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    spent_micros: int
    reserved_micros: int
    resets_at: float

    @property
    def remaining_micros(self) -> int:
        return max(0, self.budget.limit_micros - self.spent_micros - self.reserved_micros)

    @property
    def used_micros(self) -> int:
        """Spent plus held: what the limit is checked against."""
        return self.spent_micros + self.reserved_micros

    def over_limit(self, extra_micros: int = 0) -> bool:
        return self.used_micros + extra_micros > self.budget.limit_micros

    def past_soft_threshold(self, extra_micros: int = 0) -> bool:
        return self.used_micros + extra_micros > self.budget.limit_micros * self.budget.soft_threshold

    def describe(self) -> str:
        b = self.budget
        return (
            f"{b.label()} budget {usd(b.limit_micros)}/{b.period.value}: spent {usd(self.spent_micros)}, "
            f"held {usd(self.reserved_micros)}, left {usd(self.remaining_micros)} "
            f"(resets {when(self.resets_at)})"
        )


def budget_from_input(
    team: str, amount_usd: str | Decimal, period: str, *, scope: Scope, scope_id: str, soft_threshold: float
) -> Budget:
    """A budget as a moderator typed it ("$50", "month"), or InvalidRequest saying what is wrong."""
    try:
        amount = Decimal(str(amount_usd).strip().lstrip("$"))
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0 or amount > MAX_BUDGET_USD:
        raise InvalidRequest(f"A budget is an amount in dollars between 0 and {MAX_BUDGET_USD:,}, like 50 or 12.5.")
    try:
        period_ = Period(period.strip().lower())
    except ValueError:
        raise InvalidRequest("The period is day, week or month.") from None
    if (scope is Scope.TEAM) != (scope_id == ""):
        raise InvalidRequest("A channel or user budget needs the channel or user.")
    if not 0 < soft_threshold <= 1:
        raise InvalidRequest("The alert threshold is a fraction between 0 and 1.")
    return Budget(
        team=team,
        scope=scope,
        scope_id=scope_id,
        limit_micros=to_micros(amount),
        period=period_,
        soft_threshold=soft_threshold,
    )
