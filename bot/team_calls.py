"""ImagineService's calls about a team as a whole: who may use the bot and moderate it (the
allow-list, a dashboard link), what a form may offer it, and its money (usage, daily spend, top
spenders, savings, budgets and their changes, the ledger). Moderators alone see and set a team's
budgets and ledger.

A mixin of bot.service.ImagineService, which builds the desks it reads (as StoreManager is
built of its operations' mixins): adapters call these as `service.usage(...)` and so on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

from bot.access import Caller, dashboard_link, is_moderator, off_allow_list
from bot.budget_desk import BudgetDesk, UsageReport
from bot.ledger_view import LedgerFilter
from bot.money import usd
from bot.money.budgets import Budget, BudgetStatus, Scope
from bot.orgs import OrgDirectory
from bot.savings import MonthSavings, SavingsDesk
from bot.sign_in import SignIn
from bot.specs import RequestChoices, SpecBuilder
from bot.store.ports import StoreUnavailable
from bot.types import InvalidRequest, RefusalReason, Refused
from policies.config import PolicyBook, TeamPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")
STORE_DOWN = "I can't reach my database right now, so nothing was queued. Please try again in a minute."


async def guarded(work: Awaitable[T]) -> T | Refused:
    """`work`, or the store-down refusal when the database cannot be reached. Fail closed: if the
    store can't be reached, nothing is admitted."""
    try:
        return await work
    except StoreUnavailable as exc:
        # An expected, handled condition (the database is down or restarting): one line,
        # like the worker's and the outbox's, not a traceback per refused request.
        log.warning("store unavailable; request refused: %s", exc)
        return Refused(RefusalReason.UNAVAILABLE, STORE_DOWN)


class TeamCalls:
    """The calls; ImagineService sets the attributes below in its __init__."""

    _policies: PolicyBook
    _specs: SpecBuilder
    _budgets: BudgetDesk
    _savings: SavingsDesk
    _sign_in: SignIn | None  # None: the web dashboard is off (no IMAGINE_WEB_SECRET)
    _orgs: OrgDirectory  # a linked team's calls are about its organisation (bot/orgs.py)

    async def _guarded(self, work: Awaitable[T]) -> T | Refused:
        return await guarded(work)

    def request_choices(self, team: str) -> RequestChoices:
        """The models, aspect ratios, sizes and lanes a form may offer `team` (the web playground)."""
        return self._specs.choices(team)

    def policy(self, team: str) -> TeamPolicy:
        return self._policies.for_team(team)

    def team_allowed(self, team: str) -> bool:
        """Whether this Slack team / Discord guild is on the `[access] teams`
        allow-list (every team is, when there is none)."""
        return self._policies.allows(team)

    def off_allow_list(self, team: str, platform: str) -> Refused | None:
        """The refusal for a team the `[access] teams` allow-list leaves out (none for the CLI)."""
        return off_allow_list(self._policies, team, platform)

    def default_team_budget(self, team: str) -> Budget | None:
        """The budget that caps a team with no team budget of its own."""
        return self._budgets.default_team_budget(team)

    def is_moderator(self, caller: Caller) -> bool:
        return is_moderator(self._policies, caller)

    async def dashboard_link(self, caller: Caller) -> str | Refused:
        """A one-time link signing the caller in to the web dashboard, with the role the
        budgets commands would give them; a refusal off the allow-list or with the dashboard off.
        A linked team's link signs in to its organisation."""
        resolved = await self._guarded(self._orgs.caller(caller))
        return resolved if isinstance(resolved, Refused) else dashboard_link(self._policies, self._sign_in, resolved)

    async def usage(
        self, team: str, user: str, channel: str | None = None, *, platform: str = ""
    ) -> UsageReport | Refused:
        if (refused := off_allow_list(self._policies, team, platform)) is not None:
            return refused
        return await self._guarded(self._keyed(platform, team, lambda key: self._budgets.usage(key, user, channel)))

    async def daily_spend(self, team: str, days: int = 30, *, platform: str = "") -> list[dict[str, Any]] | Refused:
        """The team's charges per UTC day and model over the last `days` days: rows of day
        (its midnight, epoch seconds), model and micros."""
        if (refused := off_allow_list(self._policies, team, platform)) is not None:
            return refused
        return await self._guarded(self._keyed(platform, team, lambda key: self._budgets.daily_spend(key, days)))

    async def top_spenders(
        self, team: str, limit: int = 5, *, platform: str = ""
    ) -> dict[str, list[tuple[str, int]]] | Refused:
        """This month's `limit` biggest spenders of the team: {"user": [...], "channel": [...]},
        each a list of (name, micros), most first."""
        if (refused := off_allow_list(self._policies, team, platform)) is not None:
            return refused
        return await self._guarded(self._keyed(platform, team, lambda key: self._budgets.top_spenders(key, limit)))

    async def savings(self, team: str, *, platform: str = "") -> MonthSavings | Refused:
        """This month's cache savings and Flex/Batch savings of the team."""
        if (refused := off_allow_list(self._policies, team, platform)) is not None:
            return refused
        return await self._guarded(self._keyed(platform, team, lambda key: self._savings.this_month(key)))

    async def show_budgets(self, caller: Caller) -> list[BudgetStatus] | Refused:
        async def shown(caller: Caller) -> list[BudgetStatus] | Refused:
            caller = await self._orgs.caller(caller)
            if (refused := self._moderators_only(caller, "Only moderators can see the team's budgets.")) is not None:
                return refused
            return await self._budgets.statuses(caller.team)

        return await self._guarded(shown(caller))

    async def set_budget(
        self,
        caller: Caller,
        amount_usd: str | Decimal,
        period: str = "month",
        *,
        scope: Scope = Scope.TEAM,
        scope_id: str = "",
        soft_threshold: float | None = None,
    ) -> Budget | Refused:
        resolved = await self._guarded(self._orgs.caller(caller))
        if isinstance(resolved, Refused):
            return resolved
        caller = resolved
        if (refused := self._moderators_only(caller, "Only moderators can change budgets.")) is not None:
            return refused
        try:
            budget = await self._budgets.set(
                caller,
                amount_usd,
                period,
                scope=scope,
                scope_id=scope_id,
                soft_threshold=soft_threshold,
            )
        except InvalidRequest as exc:
            return Refused(RefusalReason.INVALID_REQUEST, str(exc))
        except StoreUnavailable as exc:
            log.warning("set_budget: store unavailable: %s", exc)
            return Refused(RefusalReason.UNAVAILABLE, STORE_DOWN)
        log.info(
            "budget set: team=%s %s %s/%s by %s",
            caller.team,
            budget.label(),
            usd(budget.limit_micros),
            budget.period.value,
            caller.user,
        )
        return budget

    async def budget_changes(self, caller: Caller, limit: int = 20) -> list[dict[str, Any]] | Refused:
        """The team's last budget changes (chat, CLI or web), newest first: the audit's rows."""

        async def changes(caller: Caller) -> list[dict[str, Any]] | Refused:
            caller = await self._orgs.caller(caller)
            if (refused := self._moderators_only(caller, "Only moderators can see the team's budgets.")) is not None:
                return refused
            return await self._budgets.changes(caller.team, limit)

        return await self._guarded(changes(caller))

    async def ledger(
        self, caller: Caller, filters: LedgerFilter, *, limit: int, offset: int = 0
    ) -> list[dict[str, Any]] | Refused:
        """The caller's team's ledger rows matching `filters`, newest first (for moderators)."""

        async def rows(caller: Caller) -> list[dict[str, Any]] | Refused:
            caller = await self._orgs.caller(caller)
            if (refused := self._moderators_only(caller, "Only moderators can see the team's ledger.")) is not None:
                return refused
            return await self._budgets.ledger(caller.team, filters, limit=limit, offset=offset)

        return await self._guarded(rows(caller))

    async def _keyed(self, platform: str, team: str, read: Callable[[str], Awaitable[T]]) -> T:
        """`read` of the key `team` is known by (its organisation's, when linked)."""
        return await read(await self._orgs.key(platform, team))

    def _moderators_only(self, caller: Caller, refusal: str) -> Refused | None:
        """A team's budgets are its moderators' to see and set (a team on the allow-list)."""
        if (refused := off_allow_list(self._policies, caller.team, caller.platform)) is not None:
            return refused
        if not self.is_moderator(caller):
            return Refused(RefusalReason.NOT_MODERATOR, refusal)
        return None
