"""Slack user groups as roles (bot.roles): who is in each user group a team's policy
configures, read with usergroups.users.list (scope usergroups:read) and kept a minute.

Slack sends no user groups with a command or an event, so the core asks here. Each
configured group is asked once a minute at most per process (usergroups.users.list is
Tier 2, about 20 calls a minute), and one lookup at a time per team, so a burst of
requests makes one round of calls. The groups' names come from usergroups.list, kept as
long; without them a group is named by its id.

A group Slack does not know (`no_such_subteam`: deleted, disabled, or a wrong id) has no
members. Any other failure (a missing scope, Slack down or rate-limiting us, no answer
within LOOKUP_TIMEOUT) is RoleLookupFailed: the core then applies the strictest role
limits. A failure is remembered for FAILURE_TTL, so a team's requests meanwhile neither
wait nor call Slack again (a rate limit is not made worse).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
from cachetools import TTLCache
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.roles import RoleLookupFailed, Standing
from policies.roles import PlatformRole

log = logging.getLogger(__name__)
# A member removed from a group loses (or gains) its limits within a minute.
MEMBERS_TTL = 60
MEMBERS_CACHE_SIZE = 2_000  # (team, group) pairs
NAMES_CACHE_SIZE = 100  # teams
# Seconds a lookup may take (the client waits out a rate limit's Retry-After, which can be a
# minute): past it the request goes on under the strictest role limits.
LOOKUP_TIMEOUT = 5.0
FAILURE_TTL = 15
# How a Slack call fails: Slack's own error, or no answer at all.
UNREACHABLE = (SlackClientError, aiohttp.ClientError, TimeoutError)


class SlackUserGroups:
    """The RoleDirectory of Slack: a team's configured user groups a user is in."""

    what, platform = "user groups", "Slack"

    def __init__(
        self,
        client: AsyncWebClient,
        is_admin: Callable[[str, str], Awaitable[bool]],
        clock: Callable[[], float] = time.monotonic,
        lookup_timeout: float = LOOKUP_TIMEOUT,
    ) -> None:
        self._client, self._is_admin, self._timeout = client, is_admin, lookup_timeout
        self._failed: TTLCache[str, str] = TTLCache(NAMES_CACHE_SIZE, FAILURE_TTL, timer=clock)
        self._members: TTLCache[tuple[str, str], frozenset[str]]
        self._members = TTLCache(MEMBERS_CACHE_SIZE, MEMBERS_TTL, timer=clock)
        self._names: TTLCache[str, dict[str, str]] = TTLCache(NAMES_CACHE_SIZE, MEMBERS_TTL, timer=clock)
        self._locks: dict[str, asyncio.Lock] = {}

    async def standing(self, team: str, user: str, role_ids: Sequence[str]) -> Standing:
        try:
            admin = await self._is_admin(team, user)
        except UNREACHABLE as exc:  # not an admin as far as we know: the limits apply
            log.warning("slack: users.info for %s failed (%s); not counted as an admin", user, _error(exc))
            admin = False
        if admin:
            return Standing((), platform_admin=True)
        async with self._locks.setdefault(team, asyncio.Lock()):
            if (failed := self._failed.get(team)) is not None:
                raise RoleLookupFailed(f"{failed} (a moment ago)")
            try:
                async with asyncio.timeout(self._timeout):
                    held = [group for group in role_ids if user in await self._members_of(team, group)]
                    names = await self._group_names(team) if held else {}
            except TimeoutError:
                self._failed[team] = f"no answer within {self._timeout:g} s"
                raise RoleLookupFailed(self._failed[team]) from None
            except RoleLookupFailed as exc:
                self._failed[team] = str(exc)
                raise
        return Standing(tuple(PlatformRole(group, names.get(group, group)) for group in held))

    async def _members_of(self, team: str, group: str) -> frozenset[str]:
        cached = self._members.get((team, group))
        if cached is not None:
            return cached
        try:
            answer = await self._client.usergroups_users_list(usergroup=group)
            members = frozenset(answer.get("users") or ())
        except UNREACHABLE as exc:
            if _error(exc) != "no_such_subteam":
                raise RoleLookupFailed(f"usergroups.users.list {group}: {_error(exc)}") from exc
            log.warning("slack: user group %s of team %s's roles does not exist (no_such_subteam)", group, team)
            members = frozenset()
        self._members[(team, group)] = members
        return members

    async def _group_names(self, team: str) -> dict[str, str]:
        """Each group's name, as people see it in Slack; {} when Slack cannot say (ids are used)."""
        cached = self._names.get(team)
        if cached is not None:
            return cached
        try:
            answer = await self._client.usergroups_list()
        except UNREACHABLE as exc:
            log.warning("slack: usergroups.list failed (%s); user groups are named by their ids", _error(exc))
            return {}
        names = {g["id"]: g.get("name") or g.get("handle") or g["id"] for g in answer.get("usergroups") or ()}
        self._names[team] = names
        return names


def _error(exc: Exception) -> str:
    """Slack's error code ("missing_scope"), or what went wrong on the way."""
    if isinstance(exc, SlackApiError) and exc.response is not None:
        return str(exc.response.get("error"))
    return repr(exc)
