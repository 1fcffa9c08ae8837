"""Who may use the bot, and who may manage a team's money.

A chat team uses the bot when it is on the `[access] teams` allow-list (every
team is, when there is none); whoever runs the CLI operates the bot, so the
list does not apply to it. A team's moderators (its policy's list, or the
platform's own admins) see and set its budgets, and may act on any of its
jobs as their requester may (delete a result, cancel a queued job).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.sign_in import Role, SignIn
from bot.teams import Membership
from bot.types import RefusalReason, Refused
from policies.config import PolicyBook
from policies.roles import PlatformRole

# The platform of requests made from the terminal (python -m bot imagine).
CLI_PLATFORM = "cli"
NOT_ON_ALLOW_LIST = (
    "This bot isn't enabled for this workspace or server. Ask the bot's operator to add "
    "it to the allow-list ([access] teams). Nothing was charged."
)
DASHBOARD_NOT_SET_UP = (
    "The web dashboard is not set up for this bot yet. An operator turns it on by setting "
    "IMAGINE_WEB_SECRET (and IMAGINE_PUBLIC_URL, the address people open); see the operator guide."
)


@dataclass(frozen=True)
class Caller(Membership):
    """Who is asking, and what their platform says about them (admin/owner,
    Manage Server...). The core decides what that allows."""

    team: str
    user: str
    platform_admin: bool = False
    platform: str = ""
    # The roles the platform says they hold (None: not read here; bot.roles looks them up).
    roles: tuple[PlatformRole, ...] | None = None
    # The caller's own team (its Slack or Discord id) when `team` is its organisation's key
    # (bot/orgs.py); None when `team` is the caller's own.
    member_team: str | None = None


def off_allow_list(policies: PolicyBook, team: str, platform: str) -> Refused | None:
    """The refusal for a chat team the allow-list leaves out; None when it may go on."""
    if platform == CLI_PLATFORM or policies.allows(team):
        return None
    return Refused(RefusalReason.TEAM_NOT_ALLOWED, NOT_ON_ALLOW_LIST)


def is_moderator(policies: PolicyBook, caller: Caller) -> bool:
    return caller.platform_admin or caller.user in policies.for_team(caller.team).moderators


def acts_for(policies: PolicyBook, caller: Caller, team: str, requester: str) -> bool:
    """Whether `caller` may act on a job of `team` asked for by `requester`: the requester
    or a moderator, of that team only (or of what the caller's team made before it was linked)."""
    return team in caller.keys and (requester == caller.user or is_moderator(policies, caller))


def dashboard_link(policies: PolicyBook, sign_in: SignIn | None, caller: Caller) -> str | Refused:
    """A one-time sign-in link to the web dashboard for the caller, as a moderator when the
    team's moderators include them (the same rule as for budgets), else as a member."""
    if (refused := off_allow_list(policies, caller.own_team, caller.platform)) is not None:
        return refused
    if sign_in is None:
        return Refused(RefusalReason.NOT_CONFIGURED, DASHBOARD_NOT_SET_UP)
    # Its own team, not its organisation's key: each request resolves it anew (bot/orgs.py), so
    # a session follows its team into and out of an organisation.
    return sign_in.link(caller.own_team, caller.user, Role.MODERATOR if is_moderator(policies, caller) else Role.MEMBER)
