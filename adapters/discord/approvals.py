"""Where Discord's asks to a moderator go: the alert channel (DISCORD_ALERT_CHANNEL) serves the
server it is in, and the servers linked into one organisation with it. The bot may be in many
servers; a request from any other must never be posted there (its moderators are not that
server's), so its refusal carries no [Ask a moderator] and says why."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import discord

from adapters.discord.components import approval_view
from adapters.discord.delivery import PLATFORM
from bot.approvals import without_offer
from bot.service import ImagineService
from bot.types import Refused

if TYPE_CHECKING:
    from adapters.discord.client import ImagineClient

log = logging.getLogger(__name__)


class AlertChannel:
    def __init__(self, service: ImagineService, channel_id: int | None) -> None:
        self._service, self._channel_id = service, channel_id

    async def for_team(self, client: ImagineClient, team: str) -> Any | None:
        """The alert channel, when it belongs to `team`'s server or one of its organisation; else None."""
        if self._channel_id is None:
            return None
        channel = client.get_channel(self._channel_id)
        if channel is None:
            try:
                channel = await client.fetch_channel(self._channel_id)
            except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("discord: the alert channel %s cannot be read: %r", self._channel_id, exc)
                return None
        guild = getattr(channel, "guild", None)
        if guild is None:
            return None
        if await self._service.same_organisation(PLATFORM, team, str(guild.id)):
            return channel
        return None

    async def refusal(self, client: ImagineClient, team: str, refused: Refused) -> tuple[str, discord.ui.View | None]:
        """A refusal's words, and [Ask a moderator] when it can work for `team`."""
        if refused.ask_token is not None and await self.for_team(client, team) is None:
            refused = without_offer(refused)
        if refused.ask_token is None:
            return refused.detail, None
        return refused.detail, approval_view(refused.ask_token, ("ask",))
