"""What Slack sends the bot, turned into core requests: /imagine, /imagine-usage,
/imagine-budget, /imagine-dashboard, /imagine-link, replies in an image's thread, and the buttons. Each listener
answers in Slack's terms (a status message, an ephemeral note); the core decides.

Every listener only parses, validates and acks; the rest (submit to the core, the status
message, recording its ts on the job, any database read) is handed to AfterAck
(adapters/after_ack.py) and runs after the HTTP answer has left, off the path of the next
request. The outbox then drives adapters/slack/delivery.py.

What Slack does after the ack, and why nothing is lost or paid twice:
* Slash commands and button presses are never re-sent by Slack (a late ack shows the user
  an error instead); events are re-sent when their 200 does not come within 3 s, at once
  and then after about 1 and 5 minutes, with X-Slack-Retry-Num. A re-sent event carries
  the same event_id: this process drops an event_id it has seen (`_seen_events`), and the
  store's idempotency key `slack:event:<event_id>` (like `slack:command:<trigger_id>` and
  the press keys) makes any other replay, in another process or after a restart, the same
  job, never a second charge.
* The ack says nothing (or only a parsing error): no promise is made to the user that the
  store does not keep. Money is only ever held by `submit`, in the store's transaction.
  A process killed after the ack but before `submit` leaves no job, no hold and no
  message: the user sees no answer and asks again. Killed after `submit` but before the
  status is recorded (`attach_delivery`), the job is announced (`announced=True`), so the
  store cancels it after ANNOUNCE_WINDOW and releases its hold: it never runs, and is
  never charged, unseen. So a crash never costs money nor runs a job nobody will see;
  a stop (SIGTERM) drains every acked request first (SlackAdapter.close).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlparse

import aiohttp
from cachetools import TTLCache
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.after_ack import AfterAck
from adapters.downloads import fetch_capped
from adapters.presses import ALREADY_ON_IT, PRESS_WINDOW, OneAtATime, press_key
from adapters.slack import render
from adapters.slack.approvals import ApprovalListeners
from adapters.slack.lineage import LineageListeners
from adapters.slack.parse import MENTION_USAGE, USAGE, ImagineText, mention_text, parse_imagine, team_of
from adapters.slack.roles import SlackUserGroups
from adapters.status import NOT_STARTED
from bot.apology import apology
from bot.attachments import DeclaredFile
from bot.money.budgets import Period
from bot.service import Caller, ImagineService
from bot.types import Accepted, EditRequest, ImagineRequest, InputImage, InvalidRequest, NeedsConfirmation, Refused

if TYPE_CHECKING:  # names used only in annotations
    from bot.types import Outcome

log = logging.getLogger(__name__)
R = TypeVar("R", ImagineRequest, EditRequest)
PLATFORM = "slack"
# Slack serves user files from here; a bot token must never be sent anywhere else.
SLACK_FILE_HOSTS = {"files.slack.com"}
# Who is a workspace admin, asked once a minute at most per person: a demoted admin loses
# moderator rights within a minute, and a flood of distinct users cannot grow the cache.
ADMIN_CACHE_TTL = 60
ADMIN_CACHE_SIZE = 10_000
# Event ids this process has taken: Slack re-sends an event for about 5 minutes; past
# that (or in another process) the store's idempotency key still makes it the same job.
SEEN_EVENTS_TTL = 15 * 60
SEEN_EVENTS_SIZE = 50_000


class Listeners:
    """The bolt listeners of one Slack app, and what they share: the core, the Web
    API client, the alert channel and a short cache of who is a workspace admin."""

    _after_ack: AfterAck  # given by register()

    def __init__(
        self,
        service: ImagineService,
        client: AsyncWebClient,
        *,
        token: str,
        alert_channel: str | None,
        api_url: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service, self.client, self._token = service, client, token
        self._alert_channel = alert_channel
        # (scheme, host) pairs the bot token may be sent to: Slack's file host, and
        # the host of SLACK_API_URL (tests and proxies serve files beside the API).
        self._file_hosts = {("https", host) for host in SLACK_FILE_HOSTS}
        if api_url:
            api = urlparse(api_url)
            self._file_hosts.add((api.scheme, api.netloc))
        self._admins: TTLCache[tuple[str, str], bool] = TTLCache(ADMIN_CACHE_SIZE, ADMIN_CACHE_TTL, timer=clock)
        # Slack sends no user groups with a request: the core asks for them (per-role limits).
        service.add_role_directory(PLATFORM, SlackUserGroups(client, self._is_admin, clock))
        self._one_at_a_time = OneAtATime()
        self._seen_events: TTLCache[str, bool] = TTLCache(SEEN_EVENTS_SIZE, SEEN_EVENTS_TTL, timer=clock)

    def register(self, app: AsyncApp, after_ack: AfterAck) -> None:
        """Every listener on `app`; what each does after its ack runs in `after_ack`."""
        self._after_ack = after_ack
        app.command("/imagine")(self._ack_imagine)
        app.command("/imagine-usage")(self._acked(self._on_usage))
        app.command("/imagine-budget")(self._acked(self._on_budget))
        app.command("/imagine-dashboard")(self._acked(self._on_dashboard))
        app.command("/imagine-link")(self._acked(self._on_link))
        app.event("message")(self._ack_message)
        app.event("app_mention")(self._ack_mention)
        app.action(render.ACTION_REROLL)(self._acked_press(self._on_rerun))
        app.action(render.ACTION_4K)(self._acked_press(self._on_rerun))
        app.action(render.ACTION_DELETE)(self._acked_press(self._on_delete))
        app.action(render.ACTION_RUN)(self._acked_press(self._on_confirmed))
        app.action(render.ACTION_USE_FLASH)(self._acked_press(self._on_confirmed))
        LineageListeners(self).register(app)  # [Undo], [History], /imagine-history
        ApprovalListeners(self).register(app)  # [Ask a moderator], [Approve], [Deny]
        app.error(self._on_error)

    async def _on_error(self, error: Exception, body: dict, respond=None) -> None:
        # The one place a failure in a listener ends (before its ack or after it): the user
        # gets one line and never the exception text (bot.apology).
        said = apology(error, log, "slack listener")
        if respond is not None and isinstance(body, dict) and body.get("response_url"):
            try:
                await respond(text=said, response_type="ephemeral", replace_original=False)
            except Exception:
                log.exception("could not tell the user about the failure")

    def _later(self, work: Callable[[], Awaitable[None]], body: dict, respond=None) -> None:
        """Run `work` after the ack; a failure in it ends in _on_error, as one before the ack does."""
        self._after_ack.start(work, functools.partial(self._on_error, body=body, respond=respond))

    def _acked(self, work: Callable[[dict, Any], Awaitable[None]]):
        """A slash command listener that acks at once and leaves `work(command, respond)` for later."""

        async def listener(ack, command: dict, respond) -> None:
            await ack()
            self._later(lambda: work(command, respond), command, respond)

        return listener

    def _acked_press(self, work: Callable[[dict, dict, Any], Awaitable[None]]):
        """A button listener that acks at once and leaves `work(body, action, respond)` for later."""

        async def listener(ack, body: dict, action: dict, respond) -> None:
            await ack()
            self._later(lambda: work(body, action, respond), body, respond)

        return listener

    async def _ack_imagine(self, ack, command: dict, respond) -> None:
        """Parse and ack; a malformed request is answered in the ack itself."""
        try:
            parsed = parse_imagine(command.get("text", ""))
        except InvalidRequest as exc:
            await ack(response_type="ephemeral", text=str(exc))
            return
        if not parsed.prompt:
            await ack(response_type="ephemeral", text=f"Tell me what to draw. {USAGE}")
            return
        await ack()
        self._later(lambda: self._on_imagine(parsed, command, respond), command, respond)

    async def _on_imagine(self, parsed: ImagineText, command: dict, respond) -> None:
        key = f"slack:command:{command['trigger_id']}" if command.get("trigger_id") else None
        request = ImagineRequest(
            prompt=parsed.prompt,
            delivery={"channel": command["channel_id"]},
            **parsed.options(),
            **_asked(command["team_id"], command["channel_id"], command["user_id"], key),
        )
        await self._present(
            await self._service.submit(request), parsed.prompt, request.channel, request.user, None, respond=respond
        )

    async def _ack_message(self, event: dict, body: dict, context: dict) -> None:
        """Bolt acks every event itself; here only what needs no database is sorted out: a
        human's reply in some thread goes on, once per event_id (Slack re-sends an event it
        thinks went unanswered)."""
        if event.get("bot_id") or event.get("subtype") not in (None, "file_share") or not event.get("user"):
            return
        thread_ts = event.get("thread_ts")
        if not thread_ts and _mentions(event, context.get("bot_user_id")):
            # A channel message with files that mentions the bot is a request, like app_mention.
            # Slack sometimes sends such a message only as a message event (a file shared with
            # the mention, slackapi/bolt-python#925); when both come, the message's own ts makes
            # them one request.
            await self._ack_mention(event, body, context)
            return
        if not thread_ts or thread_ts == event.get("ts"):
            return
        if self._first_sighting(body):
            self._later(lambda: self._on_message(event, body), body)

    def _first_sighting(self, body: dict) -> bool:
        """False for an event_id this process has taken already (Slack re-sends an event it
        thinks went unanswered)."""
        event_id = body.get("event_id")
        if event_id:
            if event_id in self._seen_events:
                return False
            self._seen_events[event_id] = True
        return True

    async def _ack_mention(self, event: dict, body: dict, context: dict) -> None:
        """A channel message that mentions the bot is a new request, with the message's files
        as its images (a blend when there are several): slash commands carry no files. In a
        thread the message event already does what a reply there does."""
        if event.get("thread_ts") or event.get("bot_id") or not event.get("user"):
            return
        if self._first_sighting(body):
            self._later(lambda: self._on_mention(event, body, context.get("bot_user_id")), body)

    async def _on_mention(self, event: dict, body: dict, bot_user_id: str | None) -> None:
        team = cast(str, body.get("team_id") or event.get("team"))
        channel, user = event["channel"], event["user"]
        try:
            parsed = parse_imagine(mention_text(event.get("text", ""), bot_user_id))
        except InvalidRequest as exc:
            await self._ephemeral(channel, user, str(exc), None)
            return
        if not parsed.prompt:
            await self._ephemeral(channel, user, f"Tell me what to draw. {MENTION_USAGE}", None)
            return
        # The message's ts, not the event id: its app_mention and message events are one request.
        key = f"slack:mention:{channel}:{event['ts']}"
        request = ImagineRequest(
            prompt=parsed.prompt,
            delivery={"channel": channel},
            **parsed.options(),
            **_asked(team, channel, user, key),
        )
        try:
            request = await self._with_files(request, event.get("files", []))
        except InvalidRequest as exc:
            await self._ephemeral(channel, user, str(exc), None)
            return
        await self._present(await self._service.submit(request), parsed.prompt, channel, user, None)

    async def _on_message(self, event: dict, body: dict) -> None:
        """A reply in the thread of a bot image edits that image."""
        thread_ts = event["thread_ts"]
        team = cast(str, body.get("team_id") or event.get("team"))  # one of them is always there
        channel, user = event["channel"], event["user"]
        image_id = await self._service.thread_image(PLATFORM, team, channel, thread_ts)
        if image_id is None:
            return  # not one of our threads
        if isinstance(image_id, Refused):  # the database is down: whose thread it is is unknown
            await self._ephemeral(channel, user, image_id.detail, thread_ts)
            return
        key = f"slack:event:{body.get('event_id')}" if body.get("event_id") else None
        request = EditRequest(
            parent_image_id=image_id,
            instruction=event.get("text", ""),
            delivery={"channel": channel, "thread_ts": thread_ts},
            **_asked(team, channel, user, key),
        )
        try:
            request = await self._with_files(request, event.get("files", []))
        except InvalidRequest as exc:
            await self._ephemeral(channel, user, str(exc), thread_ts)
            return
        await self._present(await self._service.edit(request), request.instruction, channel, user, thread_ts)

    async def _on_rerun(self, body: dict, action: dict, respond) -> None:
        user, channel = body["user"]["id"], body["channel"]["id"]
        message = body.get("message") or {}
        thread_ts = message.get("thread_ts") or message.get("ts")
        job, _ = await self._service.status(int(action["value"]))
        size = "4K" if action["action_id"] == render.ACTION_4K else None
        outcome = await self._service.rerun(
            int(action["value"]),
            Caller(team=team_of(body), user=user, platform=PLATFORM),
            platform=PLATFORM,
            channel=channel,
            size=size,
            delivery={"channel": channel, "thread_ts": thread_ts},
            idempotency_key=_press_key(body, action),
            idempotency_window=PRESS_WINDOW,
        )
        await self._present(
            outcome,
            job.spec.prompt if job else "",
            channel,
            user,
            thread_ts,
            respond=respond,
            edit=bool(job and job.spec.parent_image_id),
        )

    async def _on_delete(self, body: dict, action: dict, respond) -> None:
        caller = await self.presser(body)
        user = caller.user
        job_id = int(action["value"])
        if not await self._service.may_delete(job_id, caller):
            await respond(
                text="Only the person who asked for this image, or a moderator, can delete it.",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        # The image itself goes too (its bytes, this thread's link to it, its cache entry);
        # a cache hit's image stays when it is someone else's, as the core decides.
        await self._service.delete_result(job_id, caller)
        job, _ = await self._service.status(job_id)
        if job and job.delivery.get("file_id"):
            await self.client.files_delete(file=job.delivery["file_id"])
        message = body.get("message") or {}
        await self.client.chat_update(
            channel=body["channel"]["id"],
            ts=cast(str, message.get("ts")),
            text=f"Image deleted by <@{user}>.",
            blocks=[],
        )

    async def _on_confirmed(self, body: dict, action: dict, respond) -> None:
        """[Run] / [Use Flash]: the answer is the core's outcome, never a "going ahead" before it."""
        user = body["user"]["id"]
        async with self._one_at_a_time(action["value"]):
            outcome, request = await self._service.confirm(
                action["value"],
                Caller(team=team_of(body), user=user, platform=PLATFORM),
                use_flash=action["action_id"] == render.ACTION_USE_FLASH,
                idempotency_key=_press_key(body, action),
                idempotency_window=PRESS_WINDOW,
            )
        if request is None or isinstance(outcome, Refused):
            # In place of the question: its buttons can do nothing more.
            # (Without a request, the outcome is the refusal.)
            refused = cast(Refused, outcome)
            message = render.refusal(refused)  # a budget refusal keeps its [Ask a moderator]
            await respond(response_type="ephemeral", replace_original=request is not None, **message)
            return
        prompt = request.instruction if isinstance(request, EditRequest) else request.prompt
        await self._present(
            outcome, prompt, request.channel, request.user, request.delivery.get("thread_ts"), respond=respond
        )
        if isinstance(outcome, Accepted) and not outcome.duplicate:
            try:  # the status message is the answer; the question goes
                await respond(delete_original=True)
            except Exception as exc:  # the job is on its way: no "sorry" for a stale question
                log.warning("slack: could not remove an answered question: %s", exc)

    async def _on_usage(self, command: dict, respond) -> None:
        report = await self._service.usage(
            command["team_id"], command["user_id"], command["channel_id"], platform=PLATFORM
        )
        text = report.detail if isinstance(report, Refused) else render.usage(report)
        await respond(text=text, response_type="ephemeral")

    async def _on_budget(self, command: dict, respond) -> None:
        caller = await self._caller(command)
        words = command.get("text", "").split()
        action = words[0].lower() if words else "show"
        if action == "show":
            statuses = await self._service.show_budgets(caller)
            text = statuses.detail if isinstance(statuses, Refused) else render.budgets(statuses)
        elif action == "set" and len(words) in (2, 3):
            period = words[2] if len(words) == 3 else Period.MONTH.value
            budget = await self._service.set_budget(caller, words[1], period)
            text = (
                budget.detail
                if isinstance(budget, Refused)
                else (f"Team budget set to {render.usd(budget.limit_micros)} per {budget.period.value}.")
            )
        else:
            text = "Usage: /imagine-budget show | set <usd> [day|week|month]"
        await respond(text=text, response_type="ephemeral")

    async def _on_dashboard(self, command: dict, respond) -> None:
        link = await self._service.dashboard_link(await self._caller(command))
        text = link.detail if isinstance(link, Refused) else render.dashboard_link(link)
        # No unfurl: a preview fetch must not be what opens a one-time link.
        await respond(text=text, response_type="ephemeral", unfurl_links=False, unfurl_media=False)

    async def _on_link(self, command: dict, respond) -> None:
        """/imagine-link: a one-time code; /imagine-link CODE: complete a link made on Discord."""
        caller, code = await self._caller(command), command.get("text", "").strip()
        answer = await (
            self._service.finish_link(caller, code) if code else self._service.start_link(caller, command["channel_id"])
        )
        await respond(text=answer.detail if isinstance(answer, Refused) else answer, response_type="ephemeral")

    async def _caller(self, command: dict) -> Caller:
        """Who runs a slash command, with Slack's word on whether they are a workspace admin."""
        team, user = command["team_id"], command["user_id"]
        return Caller(team=team, user=user, platform_admin=await self._is_admin(team, user), platform=PLATFORM)

    async def presser(self, body: dict) -> Caller:
        """Who pressed a button, with Slack's word on whether they are a workspace admin (the
        core decides what a moderator may do)."""
        team, user = team_of(body), body["user"]["id"]
        return Caller(team=team, user=user, platform_admin=await self._is_admin(team, user), platform=PLATFORM)

    # -- outcomes ---------------------------------------------------------

    async def _present(
        self,
        outcome: Outcome,
        prompt: str,
        channel: str,
        user: str,
        thread_ts: str | None,
        *,
        respond=None,
        edit: bool | None = None,
    ) -> None:
        """Show an outcome: a status message for a new job, an ephemeral note otherwise."""
        if isinstance(outcome, Refused) and outcome.ask_token is not None:
            message = render.refusal(outcome)  # with [Ask a moderator]
            if respond is not None:
                await respond(response_type="ephemeral", replace_original=False, **message)
            else:
                await self.client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, **message)
        elif isinstance(outcome, Refused):
            await self._tell(outcome.detail, respond, channel, user, thread_ts)
        elif isinstance(outcome, NeedsConfirmation):
            message = render.confirmation(outcome, await self._service.hold_confirmation(outcome))
            if respond is not None:
                await respond(response_type="ephemeral", replace_original=False, **message)
            else:
                await self.client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, **message)
        elif not outcome.duplicate:
            await self._announce(
                outcome, prompt, channel, user, thread_ts, respond, edit=thread_ts is not None if edit is None else edit
            )
        elif respond is not None:  # a second press of a button: the first one's job is running
            await self._tell(ALREADY_ON_IT, respond, channel, user, thread_ts)

    async def _announce(
        self, accepted: Accepted, prompt: str, channel: str, user: str, thread_ts: str | None, respond, *, edit: bool
    ) -> None:
        message = render.status_message(prompt, user, render.queued(accepted), edit=edit)
        try:
            posted = await self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, **message)
        except Exception as exc:
            # Without a status message nobody would see the result: undo the job (and its hold).
            log.warning(
                "slack: cannot post the status of job %d in %s (%s); cancelling it", accepted.job_id, channel, exc
            )
            await self._service.cancel(accepted.job_id)
            await self._tell(
                "I can't post in this channel. Invite me with `/invite @imagine` and try again.",
                respond,
                channel,
                user,
                thread_ts,
            )
            return
        try:
            live = await self._service.attach_delivery(
                accepted.job_id,
                {"channel": channel, "status_ts": posted["ts"], "thread_ts": thread_ts or posted["ts"], "edit": edit},
            )
        except Exception:
            if await self._unannounced(accepted, channel, posted["ts"], prompt, user, edit):
                raise  # the user hears "nothing was charged" (bot.apology), which the cancel made true
            return
        if not live:  # cancelled meanwhile: the announcement came after the job's window
            log.warning("slack: job %d was cancelled before its status could be recorded", accepted.job_id)
            await self._mark_not_started(accepted, channel, posted["ts"], prompt, user, edit)
            return
        if not self._alert_channel:
            return
        for alert in accepted.alerts:
            try:
                await self.client.chat_postMessage(
                    channel=self._alert_channel, text=f":moneybag: {render.escape(alert)}"
                )
            except Exception:  # the job is accepted; a lost alert must not tell the user otherwise
                log.exception("slack: could not post a budget alert to %s", self._alert_channel)

    async def _unannounced(
        self, accepted: Accepted, channel: str, status_ts: str, prompt: str, user: str, edit: bool
    ) -> bool:
        """The status is posted but the job could not learn where it is: cancel the
        job before it may start, and say so in the status instead of "Queued".
        False when the job could not be cancelled (it started): nothing may then
        claim that nothing was charged."""
        log.warning("slack: job %d could not record its status message; cancelling it", accepted.job_id)
        if not await self._service.cancel(accepted.job_id):
            log.error("slack: job %d could not be cancelled: it is no longer queued", accepted.job_id)
            return False
        await self._mark_not_started(accepted, channel, status_ts, prompt, user, edit)
        return True

    async def _mark_not_started(
        self, accepted: Accepted, channel: str, status_ts: str, prompt: str, user: str, edit: bool
    ) -> None:
        """Not "Queued" for a job that will never run."""
        try:
            await self.client.chat_update(
                channel=channel,
                ts=status_ts,
                **render.status_message(prompt, user, render.failed(NOT_STARTED), edit=edit),
            )
        except Exception as exc:
            log.warning("slack: could not mark job %d's status as not started: %s", accepted.job_id, exc)

    async def _tell(self, text: str, respond, channel: str | None, user: str | None, thread_ts: str | None) -> None:
        if respond is not None:
            await respond(text=text, response_type="ephemeral", replace_original=False)
        elif channel and user:
            await self._ephemeral(channel, user, text, thread_ts)

    async def _ephemeral(self, channel: str, user: str, text: str, thread_ts: str | None) -> None:
        await self.client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)

    # -- helpers ----------------------------------------------------------

    async def _with_files(self, request: R, files: list[dict[str, Any]]) -> R:
        """`request` with its files read; first the core refuses what it can from their
        metadata (how many, what type, how big, a quota or budget used up), downloading nothing."""
        if not files:
            return request
        if (refused := await self._service.check_attachments(request, [_declared(f) for f in files])) is not None:
            raise InvalidRequest(refused.detail)
        return dataclasses.replace(request, images=await self.download_files(request.team, request.user, files))

    async def download_files(self, team: str, user: str, files: list[dict[str, Any]]) -> tuple[InputImage, ...]:
        """A user's attached files, one after another, each in one of the core's download slots."""
        images = []
        for file in files:
            async with self._service.download_slot(PLATFORM, team, user):
                images.append(await self._download(file))
        return tuple(images)

    async def _download(self, file: dict[str, Any]) -> InputImage:
        """A user's attached file, fetched with the bot token from Slack's own hosts only."""
        url = file.get("url_private_download") or file.get("url_private") or ""
        parsed = urlparse(url)
        if (parsed.scheme, parsed.netloc) not in self._file_hosts:
            raise InvalidRequest("I can only read files shared in Slack itself.")
        try:
            fetched = await fetch_capped(
                url, file.get("name", "That file"), headers={"Authorization": f"Bearer {self._token}"}
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise InvalidRequest(f"I couldn't download {file.get('name', 'that file')}.") from exc
        if fetched.status != 200 or fetched.content_type.startswith("text/html"):
            # Without files:read Slack answers with its login page, not the file.
            raise InvalidRequest("I couldn't read that file (does the app have the files:read scope?).")
        return InputImage(data=fetched.data, mime=file.get("mimetype") or "image/png")

    async def _is_admin(self, team: str, user: str) -> bool:
        cached = self._admins.get((team, user))
        if cached is not None:
            return cached
        info = (await self.client.users_info(user=user))["user"]
        admin = bool(info.get("is_admin") or info.get("is_owner") or info.get("is_primary_owner"))
        self._admins[(team, user)] = admin
        return admin


def _press_key(body: dict, action: dict) -> str:
    """The message, the button (with its value: the job or the question) and the user."""
    container = body.get("container") or {}
    message = (body.get("message") or {}).get("ts") or container.get("message_ts") or ""
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id") or ""
    return press_key(
        PLATFORM, f"{channel}/{message}", f"{action['action_id']}/{action.get('value', '')}", body["user"]["id"]
    )


def _asked(team: str, channel: str, user: str, key: str | None) -> dict[str, Any]:
    """Who asked, where, and the key that makes a replayed request (Slack retries) the same one."""
    where = {"team": team, "channel": channel, "user": user, "platform": PLATFORM}
    return {**where, "announced": True, "idempotency_key": key}


def _declared(file: dict[str, Any]) -> DeclaredFile:
    return DeclaredFile(name=file.get("name") or "That file", size=file.get("size"), mime=file.get("mimetype"))


def _mentions(event: dict, bot_user_id: str | None) -> bool:
    """Whether a channel message with files mentions the bot (only those are requests: without
    files a mention comes as app_mention alone)."""
    return bool(bot_user_id and event.get("files") and f"<@{bot_user_id}>" in event.get("text", ""))
