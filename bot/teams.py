"""Teams and organisations: what the core calls a team, and how linked teams share one key.

A chat team is a Slack workspace (team id "T...", or an Enterprise Grid "E...") or a Discord
server (a numeric guild id). An organisation groups any number of them: its key is its home
team's id, so the home keeps its budgets, ledger and `[teams."..."]` policy, and every other
member team's requests, budgets, quotas, usage and ledger go under that key while linked. A
team in no organisation is its own key, as before organisations existed. Ids of the two
platforms never look alike, so a key names one team or one organisation; the link table is
keyed by (platform, team) all the same.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# The platforms whose teams can be linked (the CLI and the web sign in as a key already).
CHAT_PLATFORMS = ("slack", "discord")
# The outbox kind of a plain message to a chat channel (payload: channel, text).
NOTICE = "notice"


def team_keys(key: str, own: str) -> tuple[str, ...]:
    """The keys whose jobs, images and threads are a team's: `key`, the one it spends under
    now (its organisation's), then its `own` id (what it made before it was linked). Images
    made while linked stay the organisation's after an unlink, as its ledger rows do."""
    return (key,) if key == own else (key, own)


class Membership:
    """What a Caller and a request know of their team once resolved (bot/orgs.py): `team` the
    key they spend under, `member_team` their own team's id when that key is an organisation's."""

    team: str
    member_team: str | None

    @property
    def own_team(self) -> str:
        """The team they are in on their platform: the allow-list and its moderators name it."""
        return self.member_team or self.team

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys whose jobs, images and threads are their team's (see team_keys)."""
        return team_keys(self.team, self.own_team)


@dataclass(frozen=True)
class TeamRef:
    platform: str  # slack | discord
    team: str  # the Slack team id or the Discord guild id

    def describe(self) -> str:
        return f"Slack workspace {self.team}" if self.platform == "slack" else f"Discord server {self.team}"


@dataclass(frozen=True)
class TeamLink:
    """A member of an organisation (the home is a member too: team == org)."""

    member: TeamRef
    org: str
    linked_by: str
    linked_at: float

    @property
    def home(self) -> bool:
        return self.member.team == self.org


class LinkStatus(enum.Enum):
    LINKED = "linked"
    NO_SUCH_CODE = "no_such_code"  # wrong, expired or used already
    SAME_PLATFORM = "same_platform"  # a link joins a Slack workspace with a Discord server
    ALREADY_TOGETHER = "already_together"
    IN_OTHER_ORGS = "in_other_orgs"  # both sides belong to organisations already, not the same one


@dataclass(frozen=True)
class LinkResult:
    status: LinkStatus
    org: str = ""  # the organisation's key, when linked (or the sides' orgs when refused)
    joined: TeamRef | None = None  # the team that joined the organisation
    home_side: TeamRef | None = None  # the other side: already in the organisation, or its new home
    maker_user: str = ""  # who made the code (a chat link) ...
    maker_channel: str = ""  # ... and where they hear that it was used


class UnlinkStatus(enum.Enum):
    UNLINKED = "unlinked"
    NOT_LINKED = "not_linked"
    HOME_HAS_MEMBERS = "home_has_members"  # the home leaves last: its key is the organisation's


@dataclass(frozen=True)
class UnlinkResult:
    status: UnlinkStatus
    org: str = ""
    left: tuple[TeamRef, ...] = ()  # the teams now on their own again (both, when a pair dissolves)
