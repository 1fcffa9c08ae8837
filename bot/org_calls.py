"""ImagineService's calls about organisations: linking from chat (/imagine-link) and for
operators (python -m bot org). A mixin of bot.service.ImagineService, as bot.team_calls is.

The callers here are taken as their own platform sees them: linking is about the team
itself, whatever organisation it may belong to already."""

from __future__ import annotations

from bot.access import Caller
from bot.org_links import LinkDesk
from bot.orgs import OrgDirectory
from bot.team_calls import guarded
from bot.teams import LinkResult, TeamLink, TeamRef, UnlinkResult
from bot.types import Refused


class OrgCalls:
    _links: LinkDesk  # set by ImagineService.__init__
    _orgs: OrgDirectory

    async def team_keys(self, team: str) -> tuple[str, ...]:
        """The keys a team's money and images are under (the CLI's --team, by id alone): its
        organisation's while linked, then its own (bot/teams.py team_keys)."""
        return await self._orgs.keys("", team)

    async def start_link(self, caller: Caller, channel: str) -> str | Refused:
        """`/imagine-link`: a one-time code for the caller's team (moderators), with what to do with it."""
        return await guarded(self._links.start(caller, channel))

    async def finish_link(self, caller: Caller, code: str) -> str | Refused:
        """`/imagine-link CODE`: link the caller's team with the code's (moderators, the other platform)."""
        return await guarded(self._links.finish(caller, code))

    async def link_teams(self, slack: str, discord: str, *, home: str = "slack") -> LinkResult:
        """The operator's link (python -m bot org link): no code."""
        return await self._links.link(slack, discord, home=home)

    async def unlink_team(self, member: TeamRef) -> UnlinkResult:
        return await self._links.unlink(member)

    async def team_links(self) -> list[TeamLink]:
        return await self._links.links()
