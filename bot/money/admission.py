"""Admission: whether a request may be queued, and what its hold and its calls cost.

Pure decisions over figures a store has read under its own lock (the budgets'
statuses and the quota counts); the store then executes them in the same
transaction, so every check-then-hold is atomic.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.money.budgets import Budget, BudgetStatus, Period, Scope, next_reset
from bot.money.quotas import QuotaLimits
from bot.types import Usage


@dataclass(frozen=True)
class Admission:
    """What submit must check and hold, atomically with inserting the job."""

    estimate_micros: int
    price_version: str
    quotas: QuotaLimits
    # Applies when the team has no team-scope budget row of its own (see
    # Store.budget_statuses); None means the team is uncapped (tests, the CLI).
    default_team_budget: Budget | None = None
    # Budgets that are no stored row but are checked and held like one: a role's per-user day.
    extra_budgets: tuple[Budget, ...] = ()
    # An approved overage ([Ask a moderator]): the budgets are not checked for this one job,
    # and the approval (pending -> approved) is claimed in the transaction that inserts it.
    approval_token: str | None = None
    approved_by: str | None = None


@dataclass(frozen=True)
class Denied:
    """Why a submit was not admitted: the limit, its value and the current figure."""

    limit: str  # "budget" or a QuotaLimits field name
    allowed: int  # micro-dollars for budgets, a count for quotas
    current: int
    resets_at: float | None = None
    budget: Budget | None = None


@dataclass(frozen=True)
class Charge:
    """What one provider call cost, from its reported usage."""

    cost_micros: int
    usage: Usage | None
    status: str  # succeeded | blocked | failed


# Denied.limit when an approval's job was submitted but the approval was no longer pending
# (answered already, by another press or another moderator, or expired).
APPROVAL_ANSWERED = "approval_answered"

# The quotas admission counts, in the order they are checked.
QUOTA_COUNTS = ("user_concurrent_jobs", "team_queued_jobs", "user_images_per_day")


def admission_denial(
    statuses: list[BudgetStatus], estimate_micros: int, quotas: QuotaLimits, current: dict[str, int], now: float
) -> Denied | None:
    """Why a submit may not be admitted, or None. Pure: each store reads the
    budgets' statuses and the `current` counts of QUOTA_COUNTS (under its own
    lock) and lets this decide, so every store applies the same rules."""
    for status in statuses:
        if status.over_limit(estimate_micros):
            return Denied("budget", status.budget.limit_micros, status.used_micros, status.resets_at, status.budget)
    for name in QUOTA_COUNTS:
        limit = getattr(quotas, name)
        if limit is not None and current[name] + 1 > limit:
            # Only the daily image count resets on a clock; the others free up as jobs finish.
            resets_at = next_reset(Period.DAY, now) if name == "user_images_per_day" else None
            return Denied(name, limit, current[name], resets_at)
    return None


def with_default_team_budget(budgets: list[Budget], default: Budget | None) -> list[Budget]:
    """The budgets that apply, the default team budget first when the team has none of its own."""
    if default is None or any(b.scope is Scope.TEAM for b in budgets):
        return budgets
    return [default, *budgets]


def held_default_budget(team: str, limit_micros: int | None, period: str | None) -> Budget | None:
    """The default team budget a hold was admitted under, from its row (None when none applied)."""
    if limit_micros is None or period is None:
        return None
    return Budget(
        team=team, scope=Scope.TEAM, scope_id="", limit_micros=limit_micros, period=Period(period), default=True
    )


def over_budget(statuses: list[BudgetStatus]) -> bool:
    return any(s.over_limit() for s in statuses)
