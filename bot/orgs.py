"""Which key a chat team's requests use: its organisation's (bot/teams.py), or its own id.

The core resolves a team once, where a call comes in (bot/service.py, bot/team_calls.py), so
every budget, quota, ledger and usage call after it sees the organisation's key.

Each process caches a team's answer for ORG_CACHE_TTL seconds: a link or unlink made in one
process takes effect in the others within that time (the process that made it forgets its own
copy at once). Within it a request may still be admitted under the team's previous key, which
has its own budget (or the default team budget): the window moves money between caps, and no
request is ever admitted uncapped.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TypeVar

from cachetools import TTLCache

from bot.access import Caller, is_moderator
from bot.store.ports import Store
from bot.teams import CHAT_PLATFORMS, TeamRef, team_keys
from bot.types import EditRequest, ImagineRequest
from policies.config import PolicyBook

ORG_CACHE_TTL = 5.0
ORG_CACHE_SIZE = 10_000
R = TypeVar("R", bound=ImagineRequest | EditRequest)


class OrgDirectory:
    def __init__(
        self,
        store: Store,
        policies: PolicyBook,
        *,
        ttl: float = ORG_CACHE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._policies = policies
        self._keys: TTLCache[TeamRef, str] = TTLCache(ORG_CACHE_SIZE, ttl, timer=clock)

    async def key(self, platform: str, team: str) -> str:
        """The key `team` of `platform` is known by in budgets, quotas and the ledger. A web
        session or the CLI names a team by its id alone, which is enough: the ids of the two
        chat platforms never look alike (bot/teams.py)."""
        for each in (platform,) if platform in CHAT_PLATFORMS else CHAT_PLATFORMS:
            ref = TeamRef(each, team)
            found = self._keys.get(ref)
            if found is None:
                found = self._keys[ref] = await self._store.team_org(each, team) or team
            if found != team:
                return found
        return team

    async def keys(self, platform: str, team: str) -> tuple[str, ...]:
        """The keys whose jobs, images and threads are `team`'s: its organisation's (first)
        and its own (what it made before it was linked). See Caller.keys."""
        return team_keys(await self.key(platform, team), team)

    def forget(self, *teams: TeamRef) -> None:
        """After a link or unlink in this process: the change applies here at once."""
        for ref in teams:
            self._keys.pop(ref, None)

    async def request(self, req: R) -> R:
        """The request under its organisation's key, remembering the asker's own team (for the
        allow-list and the team's own moderators). A request resolved already (a held question,
        a rerun) is resolved again from that team: the link may have changed meanwhile."""
        own = req.own_team
        key = await self.key(req.platform, own)
        if key == own:
            return req if req.team == own else dataclasses.replace(req, team=own, member_team=None)
        asker = Caller(own, req.user, platform_admin=req.platform_admin, platform=req.platform)
        return dataclasses.replace(req, team=key, member_team=own, platform_admin=is_moderator(self._policies, asker))

    async def caller(self, caller: Caller, platform: str = "") -> Caller:
        """The caller as a member of its organisation. Whoever moderates their own team
        (its `[teams."..."] moderators`, or the platform's admins) moderates the organisation."""
        own = caller.own_team
        key = await self.key(caller.platform or platform, own)
        if key == own:
            return caller if caller.team == own else dataclasses.replace(caller, team=own, member_team=None)
        own_caller = dataclasses.replace(caller, team=own, member_team=None)
        return dataclasses.replace(
            caller, team=key, member_team=own, platform_admin=is_moderator(self._policies, own_caller)
        )
