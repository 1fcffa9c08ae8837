"""Slack's side of [Ask a moderator]: the requester's press posts the request to the alert
channel with [Approve] and [Deny]; a moderator's press approves it once (the job is announced
where it was asked) or denies it (the requester hears through the outbox). The rules are the
core's (bot/approvals.py); only the posting is Slack's."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from adapters.slack import render
from adapters.slack.delivery import PLATFORM
from adapters.slack.parse import team_of
from bot.approvals import ANSWERED, ASKED, NO_ALERT_CHANNEL
from bot.service import Caller
from bot.types import Accepted, EditRequest, Refused

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from adapters.slack.listeners import Listeners

log = logging.getLogger("adapters.slack.listeners")


class ApprovalListeners:
    def __init__(self, listeners: Listeners) -> None:
        self._listeners = listeners
        self._service = listeners._service

    def register(self, app: AsyncApp) -> None:
        listeners = self._listeners
        app.action(render.ACTION_ASK)(listeners._acked_press(self._on_ask_moderator))
        app.action(render.ACTION_APPROVE)(listeners._acked_press(self._on_approve))
        app.action(render.ACTION_DENY)(listeners._acked_press(self._on_deny))

    async def _on_ask_moderator(self, body: dict, action: dict, respond) -> None:
        """[Ask a moderator] on a budget refusal: the request goes to the alert channel."""
        alert_channel = self._listeners._alert_channel
        if not alert_channel:
            await respond(text=NO_ALERT_CHANNEL, response_type="ephemeral", replace_original=False)
            return
        pending = await self._service.ask_moderator(
            action["value"], Caller(team=team_of(body), user=body["user"]["id"], platform=PLATFORM)
        )
        if isinstance(pending, Refused):
            await respond(text=pending.detail, response_type="ephemeral", replace_original=False)
            return
        try:
            await self._listeners.client.chat_postMessage(channel=alert_channel, **render.approval_request(pending))
        except SlackApiError as exc:  # not in the channel, archived...: nobody would see it
            log.warning("slack: could not post an ask to the alert channel %s: %s", alert_channel, exc)
            said = await self._service.alert_not_posted(pending.token)
            await respond(text=said, response_type="ephemeral", replace_original=False)
            return
        await respond(text=ASKED, response_type="ephemeral", replace_original=True)

    async def _on_approve(self, body: dict, action: dict, respond) -> None:
        """A moderator's [Approve]: the job runs once as an approved overage, announced where it was
        asked; anyone else is told privately and nothing changes."""
        caller = await self._listeners.presser(body)
        user = caller.user
        async with self._listeners._one_at_a_time(action["value"]):
            outcome, request = await self._service.approve(action["value"], caller)
        if request is None or not isinstance(outcome, Accepted) or outcome.duplicate:
            said = outcome.detail if isinstance(outcome, Refused) else ANSWERED
            await respond(text=said, response_type="ephemeral", replace_original=False)
            return
        prompt = request.instruction if isinstance(request, EditRequest) else request.prompt
        thread_ts = request.delivery.get("thread_ts")
        await self._listeners._present(outcome, prompt, request.channel, request.user, thread_ts)
        await respond(text=f"Approved by <@{user}>: {render.escape(prompt[:200])}", replace_original=True)

    async def _on_deny(self, body: dict, action: dict, respond) -> None:
        """A moderator's [Deny]: the requester is told (the outbox); anyone else, privately, no."""
        caller = await self._listeners.presser(body)
        user = caller.user
        async with self._listeners._one_at_a_time(action["value"]):
            refused = await self._service.deny(action["value"], caller)
        if refused is not None:
            await respond(text=refused.detail, response_type="ephemeral", replace_original=False)
            return
        await respond(text=f"Denied by <@{user}>.", replace_original=True)
