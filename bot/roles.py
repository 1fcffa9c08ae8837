"""Whose requests per-role limits bind, and what those limits are (policies/roles.py
combines the rules; this module finds the roles).

A request carries the roles its adapter read from the platform (Discord sends a member's
roles with every interaction and message). Where the platform does not send them (Slack),
the core asks that platform's RoleDirectory, which the adapter registers at start-up: it
looks up the team's configured user groups (and whether the user is a workspace admin).

Moderators (the policy's list, or the platform's admins) and the operator's CLI are never
limited by roles. When roles cannot be read (the lookup failed, or a platform with no way
to read them, such as the web dashboard), the strictest configured limits apply: money
first, and the refusal says why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from bot.access import CLI_PLATFORM, Caller, is_moderator
from bot.money import to_micros, usd
from bot.money.admission import Denied
from bot.money.budgets import Budget, Period, Scope, when
from bot.money.quotas import QuotaLimits
from bot.types import EditRequest, ImagineRequest, RefusalReason, Refused
from policies.config import PolicyBook
from policies.roles import PlatformRole, RoleLimits, images_refusal, most_generous, spend_refusal, strictest

log = logging.getLogger(__name__)

LOOKUP_FAILED = "I couldn't read your {what} from {platform} just now, so the strictest role limits apply."
NOT_READABLE = "Your roles can't be read here, so the strictest role limits apply."


@dataclass(frozen=True)
class Standing:
    """What a platform's directory says about a user: the configured roles they hold, and
    whether the platform counts them an admin (a moderator, never limited by roles)."""

    roles: tuple[PlatformRole, ...]
    platform_admin: bool = False


class RoleLookupFailed(Exception):
    """The platform could not say which roles a user holds (an error, a missing scope...)."""


class RoleDirectory(Protocol):
    """A platform's lookup of a user's roles, for a platform whose requests do not carry them."""

    what: str  # what its roles are called, for people: "user groups"
    platform: str  # the platform's name, for people: "Slack"

    async def standing(self, team: str, user: str, role_ids: Sequence[str]) -> Standing:
        """Which of `role_ids` the user holds, and whether they are an admin; RoleLookupFailed
        when the platform cannot say."""
        ...


class RoleDesk:
    """The role limits of a request's asker, from the request or a platform's directory."""

    def __init__(self, policies: PolicyBook) -> None:
        self._policies = policies
        self._directories: dict[str, RoleDirectory] = {}

    def add_directory(self, platform: str, directory: RoleDirectory) -> None:
        self._directories[platform] = directory

    async def limits(self, req: ImagineRequest | EditRequest) -> RoleLimits | None:
        """The role limits binding the asker of `req`, or None (no roles configured, none
        held, or a moderator)."""
        policy = self._policies.for_team(req.team)
        caller = Caller(req.team, req.user, platform_admin=req.platform_admin, platform=req.platform)
        if not policy.roles or req.platform == CLI_PLATFORM or is_moderator(self._policies, caller):
            return None
        if req.roles is not None:
            return most_generous(policy, req.roles)
        directory = self._directories.get(req.platform)
        if directory is None:
            return strictest(policy, NOT_READABLE)
        try:
            # Asked of the asker's own workspace: a linked one's key may be a Discord server's id.
            standing = await directory.standing(req.own_team, req.user, tuple(policy.roles))
        except RoleLookupFailed as exc:
            log.warning(
                "roles of %s in %s could not be read (%s); the strictest role limits apply", req.user, req.team, exc
            )
            return strictest(policy, LOOKUP_FAILED.format(what=directory.what, platform=directory.platform))
        if standing.platform_admin:
            return None
        return most_generous(policy, standing.roles)


def role_quotas(quotas: QuotaLimits, limits: RoleLimits | None) -> QuotaLimits:
    """The team's quotas with a role's images a day in place of the team's."""
    if limits is None or limits.images_per_day is None:
        return quotas
    return QuotaLimits(limits.images_per_day.value, quotas.user_concurrent_jobs, quotas.team_queued_jobs)


def role_budgets(team: str, user: str, limits: RoleLimits | None) -> tuple[Budget, ...]:
    """A role's dollars a day as a budget of the user's, held like a stored one at admission."""
    if limits is None or limits.daily_usd is None:
        return ()
    bound = limits.daily_usd
    return (
        Budget(
            team=team,
            scope=Scope.USER,
            scope_id=user,
            limit_micros=to_micros(bound.value),
            period=Period.DAY,
            soft_threshold=1.0,  # its alert line is the limit: no question, no operator alert
            role=", ".join(bound.roles),
        ),
    )


def role_refusal(limits: RoleLimits | None, denied: Denied, estimate: Decimal | None) -> Refused | None:
    """The refusal naming the role, when what admission refused is a role's limit (None else).
    Without an estimate (checked before the request was priced) the day's money is used up."""
    if limits is None or denied.resets_at is None:
        return None
    resets = when(denied.resets_at)
    if denied.budget is not None and denied.budget.role is not None and limits.daily_usd is not None:
        needs = usd(to_micros(estimate)) if estimate is not None else None
        text = spend_refusal(limits, limits.daily_usd, usd(denied.current), needs, resets)
        return Refused(RefusalReason.BUDGET_EXHAUSTED, text)
    if denied.limit == "user_images_per_day" and limits.images_per_day is not None:
        return Refused(
            RefusalReason.QUOTA_EXCEEDED, images_refusal(limits, limits.images_per_day, denied.current, resets)
        )
    return None
