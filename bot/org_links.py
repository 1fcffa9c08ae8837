"""Linking teams into an organisation: from chat with a one-time code, or by an operator.

`/imagine-link` by a moderator on one platform makes a short code (single use, CODE_TTL,
stored as its SHA-256); `/imagine-link CODE` by a moderator on the other platform completes
the link, and both sides are told (the maker through the outbox, in the channel where the
code was made). Having both moderators act proves control of both sides. Attempts are
counted per team (ATTEMPTS_PER_WINDOW), so a code cannot be guessed by trying.

The callers here are the people as their own platform sees them (not resolved to an
organisation): a moderator of their own team, on its allow-list.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import Callable

from bot.access import Caller, is_moderator, off_allow_list
from bot.orgs import OrgDirectory
from bot.store.ports import Store
from bot.teams import CHAT_PLATFORMS, LinkResult, LinkStatus, TeamLink, TeamRef, UnlinkResult
from bot.types import RefusalReason, Refused
from policies.config import PolicyBook

log = logging.getLogger(__name__)
CODE_TTL = 15 * 60.0
CODE_MINUTES = int(CODE_TTL // 60)
# No 0/O, 1/I: read aloud or copied by hand, a code still works. 32 letters, 8 of them: 40 bits.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
ATTEMPTS_PER_WINDOW = 10
ATTEMPTS_WINDOW = 15 * 60.0

NOT_A_MODERATOR = "Only moderators can link this {place} with another platform."
NOT_A_CHAT_TEAM = "Linking joins a Slack workspace with a Discord server: run /imagine-link in one of them."
NO_SUCH_CODE = (
    "That link code doesn't work: it may be mistyped, used already, or older than {minutes} minutes. "
    "Nothing was linked. Ask a moderator on the other platform for a new one (`/imagine-link`)."
)
SAME_PLATFORM = (
    "That code was made on {platform} too. A link joins a Slack workspace with a Discord server: "
    "run `/imagine-link {code}` on the other platform. Nothing was linked, and the code still works there."
)
ALREADY_TOGETHER = "This {place} and {other} are already linked: they share budgets already. Nothing changed."
IN_OTHER_ORGS = (
    "Both sides already belong to different organisations, so nothing was linked. An operator can "
    "unlink one first (`python -m bot org unlink ...`)."
)
TOO_MANY = "Too many link attempts from this {place}. Please try again in {minutes} minute{s}."


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def shown(code: str) -> str:
    """K7P2M9QD as K7P2-M9QD: easier to read out."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def normalised(typed: str) -> str:
    """What a person typed as a code: any case, with or without the dash or spaces."""
    return "".join(ch for ch in typed.upper() if ch.isalnum())


def place(platform: str) -> str:
    return "workspace" if platform == "slack" else "server"


def platform_name(platform: str) -> str:
    return "Slack" if platform == "slack" else "Discord"


def other_platform(platform: str) -> str:
    return "discord" if platform == "slack" else "slack"


class LinkDesk:
    def __init__(
        self,
        store: Store,
        policies: PolicyBook,
        orgs: OrgDirectory,
        *,
        make_code: Callable[[], str] = new_code,
    ) -> None:
        self._store = store
        self._policies = policies
        self._orgs = orgs
        self._make_code = make_code

    async def start(self, caller: Caller, channel: str) -> str | Refused:
        """A new one-time code for the caller's team, with what to do with it."""
        if (refused := await self._may_link(caller)) is not None:
            return refused
        code = self._make_code()
        await self._store.save_link_code(
            code_hash(code), TeamRef(caller.platform, caller.team), caller.user, channel, CODE_TTL
        )
        other = other_platform(caller.platform)
        return (
            f"Your link code is `{shown(code)}`. Within {CODE_MINUTES} minutes, a moderator of the "
            f"{platform_name(other)} {place(other)} to link runs `/imagine-link {shown(code)}` there. "
            "It works once. Once linked, both share one set of budgets, quotas, usage and ledger."
        )

    async def finish(self, caller: Caller, typed: str) -> str | Refused:
        """Complete a link with a code made on the other platform; both sides are told."""
        if (refused := await self._may_link(caller)) is not None:
            return refused
        joiner, hashed = TeamRef(caller.platform, caller.team), code_hash(normalised(typed))
        result = await self._store.redeem_link_code(hashed, joiner, caller.user)
        if result.status is not LinkStatus.LINKED:
            return Refused(RefusalReason.INVALID_REQUEST, self._refusal(result, caller, typed))
        assert result.joined is not None and result.home_side is not None
        self._orgs.forget(result.joined, result.home_side)
        log.info("org %s: %s joined, linked from chat by %s", result.org, result.joined, caller.user)
        maker = result.home_side if result.home_side.platform != caller.platform else result.joined
        await self._store.queue_notice(
            f"link:{hashed}",  # one notice per code: a team linked again later is told again
            maker.platform,
            result.maker_channel,
            f"Linked: this {place(maker.platform)} and {_other_side(result, maker).describe()} are now one "
            f"organisation and share budgets, quotas, usage and the ledger (code made by {result.maker_user}, "
            f"used by {caller.user}).",
        )
        return (
            f"Linked: this {place(caller.platform)} and {_other_side(result, joiner).describe()} are now one "
            f"organisation. They share budgets, quotas, usage and the ledger: {_whose(result)}"
            f"{_set_aside(result, joiner)}. `/imagine-usage` shows the shared budget."
        )

    async def _may_link(self, caller: Caller) -> Refused | None:
        if caller.platform not in CHAT_PLATFORMS:
            return Refused(RefusalReason.INVALID_REQUEST, NOT_A_CHAT_TEAM)
        if (refused := off_allow_list(self._policies, caller.team, caller.platform)) is not None:
            return refused
        if not is_moderator(self._policies, caller):
            return Refused(RefusalReason.NOT_MODERATOR, NOT_A_MODERATOR.format(place=place(caller.platform)))
        wait = await self._store.take_rate_slot(
            f"link:{caller.platform}:{caller.team}", ATTEMPTS_PER_WINDOW, ATTEMPTS_WINDOW
        )
        if wait > 0:
            minutes = max(1, math.ceil(wait / 60))
            text = TOO_MANY.format(place=place(caller.platform), minutes=minutes, s="" if minutes == 1 else "s")
            return Refused(RefusalReason.QUOTA_EXCEEDED, text)
        return None

    def _refusal(self, result: LinkResult, caller: Caller, typed: str) -> str:
        if result.status is LinkStatus.SAME_PLATFORM:
            return SAME_PLATFORM.format(platform=platform_name(caller.platform), code=shown(normalised(typed)))
        if result.status is LinkStatus.ALREADY_TOGETHER:
            return ALREADY_TOGETHER.format(place=place(caller.platform), other=f"organisation {result.org}")
        if result.status is LinkStatus.IN_OTHER_ORGS:
            return IN_OTHER_ORGS
        return NO_SUCH_CODE.format(minutes=CODE_MINUTES)

    # -- operators --------------------------------------------------------------

    async def link(self, slack: str, discord: str, *, home: str = "slack") -> LinkResult:
        """`python -m bot org link`: no code, the operator controls both sides. `home` names the
        side whose budgets the organisation keeps when neither belongs to one yet."""
        sides = (TeamRef("slack", slack), TeamRef("discord", discord))
        first, second = sides if home == "slack" else sides[::-1]
        result = await self._store.link_teams(first, second, "cli")
        self._orgs.forget(*sides)
        return result

    async def unlink(self, member: TeamRef) -> UnlinkResult:
        result = await self._store.unlink_team(member)
        self._orgs.forget(member, *result.left)
        return result

    async def links(self) -> list[TeamLink]:
        return await self._store.team_links()


def _other_side(result: LinkResult, side: TeamRef) -> TeamRef:
    assert result.joined is not None and result.home_side is not None
    return result.home_side if side == result.joined else result.joined


def _whose(result: LinkResult) -> str:
    assert result.home_side is not None
    if result.home_side.team == result.org:
        return f"those of {result.home_side.describe()}"
    return f"those of the organisation {result.home_side.describe()} belongs to"


def _set_aside(result: LinkResult, side: TeamRef) -> str:
    if side == result.joined:
        return f" (this {place(side.platform)}'s own budgets are set aside while it is linked)"
    return ""
