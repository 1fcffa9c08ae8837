"""What Discord users do, turned into core requests: /imagine, /imagine-usage,
/imagine-budget, /imagine-dashboard, /imagine-link, the "Edit image" menu, replies and thread messages, and the
buttons. Each handler answers in Discord's terms; the core decides.

/imagine defers at once (Discord wants an answer within 3 s), submits to the
core, turns the deferred reply into the status message and opens a thread on
it; the outbox then drives adapters/discord/delivery.py.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aiohttp
import discord
from discord import app_commands

from adapters.discord import render
from adapters.discord.approvals import AlertChannel
from adapters.discord.budget_command import BudgetCommands
from adapters.discord.components import EditModal, approval_view, confirm_view
from adapters.discord.delivery import PLATFORM, TOKEN_LIFETIME
from adapters.discord.imagine_command import imagine_command
from adapters.discord.lineage import history_command, on_undo
from adapters.discord.roles import member_standing
from adapters.downloads import fetch_capped
from adapters.presses import ALREADY_ON_IT, PRESS_WINDOW, OneAtATime, press_key
from adapters.status import NOT_STARTED
from bot.apology import SORRY, apology
from bot.approvals import ANSWERED, ASKED, NO_ALERT_CHANNEL
from bot.attachments import DeclaredFile
from bot.service import Caller, ImagineService
from bot.types import Accepted, EditRequest, ImagineRequest, InputImage, InvalidRequest, NeedsConfirmation, Refused

if TYPE_CHECKING:  # names used only in annotations
    from adapters.discord.client import ImagineClient
    from bot.types import Outcome

log = logging.getLogger(__name__)
R = TypeVar("R", ImagineRequest, EditRequest)


class Handlers:
    """The commands and what answers users: one per Discord client."""

    def __init__(self, service: ImagineService, alert_channel: int | None) -> None:
        self._service, self._alert_channel = service, alert_channel
        self._alerts = AlertChannel(service, alert_channel)
        self._one_at_a_time = OneAtATime()
        self.client: ImagineClient  # set by the client that owns these handlers

    @property
    def service(self) -> ImagineService:
        return self._service

    async def check_guild(self, guild: discord.Guild) -> None:
        """Leave a guild that is not on the [access] teams allow-list: the app may be
        public, and anyone could add it to their server."""
        if self._service.team_allowed(str(guild.id)):
            return
        try:
            await guild.leave()
        except discord.HTTPException as exc:  # its requests are still refused by the core
            log.warning(
                "discord: guild %s (%s) is not on the [access] teams allow-list, and leaving it failed: %s %s",
                guild.id,
                guild.name,
                exc.status,
                exc.text,
            )
            return
        log.warning("discord: left guild %s (%s): not on the [access] teams allow-list", guild.id, guild.name)

    # -- commands ---------------------------------------------------------

    def add_commands(self, tree: app_commands.CommandTree) -> None:
        handlers = self

        imagine = imagine_command(handlers.on_imagine, handlers._service.most_reference_images())

        @app_commands.command(name="imagine-usage", description="Your spend and the server's budget")
        @app_commands.guild_only()
        async def usage(interaction: discord.Interaction) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            report = await handlers._service.usage(
                str(interaction.guild_id),
                str(interaction.user.id),
                _budget_channel(interaction.channel),
                platform=PLATFORM,
            )
            text = report.detail if isinstance(report, Refused) else render.usage(report)
            await interaction.followup.send(text, ephemeral=True)

        @app_commands.command(name="imagine-dashboard", description="A private sign-in link to the web dashboard")
        @app_commands.guild_only()
        async def dashboard(interaction: discord.Interaction) -> None:
            link = await handlers._service.dashboard_link(handlers.caller(interaction))
            text = link.detail if isinstance(link, Refused) else render.dashboard_link(link)
            # Answered at once (making a link reads at most the team's organisation, usually
            # cached), only to its asker, with no preview.
            await interaction.response.send_message(text, ephemeral=True, suppress_embeds=True)

        @app_commands.command(name="imagine-link", description="Moderators: share budgets with a Slack workspace")
        @app_commands.guild_only()
        @app_commands.describe(code="The code /imagine-link gave on Slack; leave it out to get a code for Slack")
        async def link(interaction: discord.Interaction, code: app_commands.Range[str, 1, 32] | None = None) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            caller = handlers.caller(interaction)
            answer = await (
                handlers._service.finish_link(caller, code)
                if code
                else handlers._service.start_link(caller, str(interaction.channel_id))
            )
            await interaction.followup.send(answer.detail if isinstance(answer, Refused) else answer, ephemeral=True)

        # Budgets belong to a server: in DMs nothing would pay for the image.
        edit_menu = app_commands.guild_only(app_commands.ContextMenu(name="Edit image", callback=handlers.on_edit_menu))
        tree.add_command(imagine)
        tree.add_command(usage)
        tree.add_command(BudgetCommands(handlers))
        tree.add_command(dashboard)
        tree.add_command(history_command(handlers))
        tree.add_command(link)
        tree.add_command(edit_menu)

    def caller(self, interaction: discord.Interaction) -> Caller:
        # Manage Server in this channel counts as a moderator; the core checks again.
        team, user = str(interaction.guild_id), str(interaction.user.id)
        return Caller(team=team, user=user, platform=PLATFORM, **_standing(interaction))

    async def on_imagine(
        self, interaction: discord.Interaction, prompt: str, aspect, size, model, lane, images: list[discord.Attachment]
    ) -> None:
        await interaction.response.defer(thinking=True)
        options = {"aspect_ratio": aspect, "size": size, "model": model, "lane": lane}
        request = ImagineRequest(prompt=prompt, **options, **_asked_by(interaction))
        try:
            request = await self._with_attachments(request, images)
        except InvalidRequest as exc:
            await self._refuse(interaction, str(exc))
            return
        await self._present(interaction, await self._service.submit(request), prompt)

    async def on_edit_menu(self, interaction: discord.Interaction, message: discord.Message) -> None:
        if not _image_attachments(message):
            await interaction.response.send_message("That message has no image to edit.", ephemeral=True)
            return
        await interaction.response.send_modal(EditModal(self, message))

    async def on_edit_modal(self, interaction: discord.Interaction, target: discord.Message, instruction: str) -> None:
        await interaction.response.defer(thinking=True)
        image_id = await self._service.thread_image(
            PLATFORM, str(interaction.guild_id), str(target.channel.id), f"msg:{target.id}"
        )
        common = _asked_by(interaction)
        if isinstance(image_id, Refused):  # the database is down
            await self._refuse(interaction, image_id.detail)
            return
        if image_id is not None:
            outcome = await self._service.edit(EditRequest(parent_image_id=image_id, instruction=instruction, **common))
        else:
            # Anyone's image: it goes to the model as the picture to edit.
            try:
                request = await self._with_attachments(
                    ImagineRequest(prompt=instruction, **common), _image_attachments(target)[:1]
                )
            except InvalidRequest as exc:
                await self._refuse(interaction, str(exc))
                return
            outcome = await self._service.submit(request)
        await self._present(interaction, outcome, instruction, edit=True)

    async def on_message(self, message: discord.Message) -> None:
        """A reply to a bot image, or any message in a bot image thread, edits it."""
        if message.author.bot or message.guild is None or not message.content.strip():
            return
        guild = str(message.guild.id)
        image_id = None
        if message.reference and message.reference.message_id:
            image_id = await self._service.thread_image(
                PLATFORM, guild, str(message.reference.channel_id), f"msg:{message.reference.message_id}"
            )
        if image_id is None and isinstance(message.channel, discord.Thread):
            image_id = await self._service.thread_image(
                PLATFORM, guild, str(message.channel.id), str(message.channel.id)
            )
        if isinstance(image_id, Refused):  # the database is down: say so where the bot was addressed
            if self._addresses_the_bot(message):
                await message.reply(image_id.detail, mention_author=False)
            return
        if image_id is None:
            return
        request = EditRequest(
            team=guild,
            channel=_budget_channel(message.channel),
            user=str(message.author.id),
            platform=PLATFORM,
            parent_image_id=image_id,
            instruction=message.content,
            announced=True,
            idempotency_key=f"discord:message:{message.id}",
            # Where it was asked (the thread): an approval of it is posted there, as an edit.
            delivery={"asked_in": str(message.channel.id)},
            **member_standing(message.author),
        )
        try:
            request = await self._with_attachments(request, message.attachments)
        except InvalidRequest as exc:
            await message.reply(str(exc), mention_author=False)
            return
        outcome = await self._service.edit(request)
        if isinstance(outcome, Accepted):
            if not outcome.duplicate:  # a duplicate is a replayed message: its status is out already
                status = functools.partial(
                    message.reply,
                    render.status_message(message.content, str(message.author.id), render.queued(outcome), edit=True),
                    mention_author=False,
                )
                if not await self._announce(outcome, status, message.channel, None, message.content):
                    await _quietly(message.reply(SORRY, mention_author=False))
        elif isinstance(outcome, NeedsConfirmation):
            await message.reply(
                render.confirmation(outcome), view=await self._confirm_view(outcome), mention_author=False
            )
        else:  # a refusal; a budget one with [Ask a moderator] where a moderator can be asked
            text, view = await self._alerts.refusal(self.client, guild, outcome)
            if view is None:
                await message.reply(render.clip(text), mention_author=False)
            else:
                await message.reply(render.clip(text), view=view, mention_author=False)

    def _addresses_the_bot(self, message: discord.Message) -> bool:
        """A reply to the bot's message, or a message in a thread the bot started: what may be an
        edit even when the store cannot say (any other thread's chatter is not the bot's business)."""
        me = self.client.user
        if me is None:
            return False
        replied = message.reference.resolved if message.reference else None
        if isinstance(replied, discord.Message) and replied.author.id == me.id:
            return True
        return isinstance(message.channel, discord.Thread) and message.channel.owner_id == me.id

    async def on_job_button(self, interaction: discord.Interaction, action: str, job_id: int) -> None:
        if action == "undo":
            await on_undo(self, interaction, job_id)
            return
        if action == "delete":
            await interaction.response.defer(ephemeral=True, thinking=True)  # answer first, then ask the store
            caller = self.caller(interaction)
            if not await self._service.may_delete(job_id, caller):
                await interaction.followup.send(
                    "Only the person who asked for this image, or a moderator, can delete it.", ephemeral=True
                )
                return
            # The image itself goes too (its bytes, the thread's link to it, its cache entry);
            # a cache hit's image stays when it is someone else's, as the core decides.
            await self._service.delete_result(job_id, caller)
            await cast(discord.Message, interaction.message).delete()  # a button press has its message
            await interaction.followup.send("Deleted.", ephemeral=True)
            return
        await interaction.response.defer(thinking=True)
        job, _ = await self._service.status(job_id)
        outcome = await self._service.rerun(
            job_id,
            self.caller(interaction),
            platform=PLATFORM,
            channel=_budget_channel(interaction.channel),
            size="4K" if action == "4k" else None,
            idempotency_key=_press_key(interaction, f"{action}:{job_id}"),
            idempotency_window=PRESS_WINDOW,
        )
        await self._present(interaction, outcome, job.spec.prompt if job else "")

    async def on_confirm(self, interaction: discord.Interaction, token: str, *, use_flash: bool) -> None:
        """[Run] / [Use Flash]: the answer is the core's outcome (a status, or the refusal)."""
        await interaction.response.defer(thinking=True)
        async with self._one_at_a_time(token):
            outcome, request = await self._service.confirm(
                token,
                self.caller(interaction),
                use_flash=use_flash,
                idempotency_key=_press_key(interaction, f"{'flash' if use_flash else 'run'}:{token}"),
                idempotency_window=PRESS_WINDOW,
            )
        prompt = (
            "" if request is None else (request.instruction if isinstance(request, EditRequest) else request.prompt)
        )
        await self._present(interaction, outcome, prompt, edit=isinstance(request, EditRequest))

    async def on_approval_button(self, interaction: discord.Interaction, action: str, token: str) -> None:
        """[Ask a moderator] (the requester), [Approve] / [Deny] (moderators; anyone else is
        told privately and nothing changes)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        caller = self.caller(interaction)
        if action == "ask":
            await self._ask_moderator(interaction, token, caller)
            return
        if action == "deny":
            async with self._one_at_a_time(token):
                refused = await self._service.deny(token, caller)
            if refused is not None:
                await interaction.followup.send(render.clip(refused.detail), ephemeral=True)
                return
            await _quietly(self._answered_in_alert(interaction, f"Denied by <@{caller.user}>."))
            await interaction.followup.send("Denied: the requester is told.", ephemeral=True)
            return
        async with self._one_at_a_time(token):
            outcome, request = await self._service.approve(token, caller)
        if request is None or not isinstance(outcome, Accepted) or outcome.duplicate:
            said = outcome.detail if isinstance(outcome, Refused) else ANSWERED
            await interaction.followup.send(render.clip(said), ephemeral=True)
            return
        prompt = request.instruction if isinstance(request, EditRequest) else request.prompt
        channel = await self._asked_in(request)
        status = functools.partial(
            channel.send,
            render.status_message(prompt, request.user, render.queued(outcome), edit=isinstance(request, EditRequest)),
        )
        if not await self._announce(outcome, status, channel, None, prompt):
            await interaction.followup.send(SORRY, ephemeral=True)
            return
        await _quietly(self._answered_in_alert(interaction, f"Approved by <@{caller.user}>: {prompt[:200]}"))
        await interaction.followup.send("Approved: it runs now, as an approved overage.", ephemeral=True)

    async def _ask_moderator(self, interaction: discord.Interaction, token: str, caller: Caller) -> None:
        alerts = await self._alerts.for_team(self.client, caller.team)  # never another server's channel
        if alerts is None:
            await interaction.followup.send(NO_ALERT_CHANNEL, ephemeral=True)
            return
        pending = await self._service.ask_moderator(token, caller)
        if isinstance(pending, Refused):
            await interaction.followup.send(render.clip(pending.detail), ephemeral=True)
            return
        try:
            await alerts.send(
                render.clip(pending.text()),
                view=approval_view(token, ("approve", "deny")),
                allowed_mentions=discord.AllowedMentions.none(),  # the alert names people, pings nobody
            )
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:  # nobody would see it
            log.warning("discord: could not post an ask to the alert channel %s: %r", self._alert_channel, exc)
            await interaction.followup.send(await self._service.alert_not_posted(token), ephemeral=True)
            return
        await interaction.followup.send(ASKED, ephemeral=True)

    async def _asked_in(self, request: ImagineRequest | EditRequest) -> Any:
        """Where an approved request is posted: where it was asked (an image's thread, for an
        edit there), else its channel."""
        channel_id = int(request.delivery.get("asked_in") or request.channel)
        channel = self.client.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self.client.fetch_channel(channel_id)
            except (discord.HTTPException, aiohttp.ClientError, TimeoutError):
                return self.client.channel(channel_id)
        return channel

    @staticmethod
    async def _answered_in_alert(interaction: discord.Interaction, text: str) -> None:
        """The alert channel's request says how it was answered; its buttons go."""
        if interaction.message is not None:
            await interaction.message.edit(content=text, view=None, allowed_mentions=discord.AllowedMentions.none())

    # -- outcomes ---------------------------------------------------------

    async def _present(
        self, interaction: discord.Interaction, outcome: Outcome, prompt: str, *, edit: bool = False
    ) -> None:
        """Turn the deferred reply into a status message, or into a private note."""
        if isinstance(outcome, Refused) and outcome.ask_token is not None:
            text, view = await self._alerts.refusal(self.client, str(interaction.guild_id), outcome)
            if view is None:  # no alert channel for this server: the words say so
                await self._refuse(interaction, text)
                return
            await interaction.delete_original_response()  # a budget refusal, with [Ask a moderator]
            await interaction.followup.send(render.clip(text), view=view, ephemeral=True)
        elif isinstance(outcome, Refused):
            await self._refuse(interaction, outcome.detail)
        elif isinstance(outcome, NeedsConfirmation):
            await interaction.delete_original_response()
            await interaction.followup.send(
                render.confirmation(outcome), view=await self._confirm_view(outcome), ephemeral=True
            )
        elif outcome.duplicate:  # a second press of a button: the first one's job is running
            await self._refuse(interaction, ALREADY_ON_IT)
        else:
            status = functools.partial(
                interaction.edit_original_response,
                content=render.status_message(prompt, str(interaction.user.id), render.queued(outcome), edit=edit),
            )
            if not await self._announce(outcome, status, interaction.channel, interaction, prompt):
                await _quietly(self._refuse(interaction, SORRY))

    async def _announce(self, accepted: Accepted, post_status, channel, interaction, prompt: str) -> bool:
        """Post the job's status (post_status()) and record where it reports. If either
        fails, the job is cancelled before it may start (it would run, and be charged,
        unseen) and False is returned: only then may the user hear "nothing was charged"."""
        status = None
        try:
            status = await post_status()
            if not await self._attach(accepted, status, channel, interaction, prompt):
                # Cancelled meanwhile (announced after its window): say so, not "Queued".
                log.warning("discord: job %d was cancelled before its status could be recorded", accepted.job_id)
                await _quietly(status.edit(content=render.failed(NOT_STARTED)))
                return True
        except Exception as exc:
            log.warning(
                "discord: job %d could not be announced (%s: %s); cancelling it",
                accepted.job_id,
                type(exc).__name__,
                exc,
            )
            if not await self._service.cancel(accepted.job_id):
                log.error("discord: job %d could not be cancelled: it is no longer queued", accepted.job_id)
                return True
            if status is not None:  # not "Queued" for a job that will never run
                await _quietly(status.edit(content=render.failed(NOT_STARTED)))
            return False
        guild = getattr(channel, "guild", None)
        # Only in an alert channel of this server (or its organisation): never another's.
        alerts = await self._alerts.for_team(self.client, str(guild.id)) if accepted.alerts and guild else None
        if alerts is not None:
            for alert in accepted.alerts:
                try:
                    await alerts.send(f"💰 {alert}")
                except discord.HTTPException:  # the job is accepted; a lost alert must not say otherwise
                    log.exception("discord: could not post a budget alert")
        return True

    async def _attach(self, accepted: Accepted, status: discord.Message, channel, interaction, prompt: str) -> bool:
        """Open the result thread (or use the one we are in) and record where the job reports;
        False when the job was cancelled meanwhile."""
        own_thread = not isinstance(channel, discord.Thread)
        thread = await status.create_thread(name=render.thread_name(prompt)) if own_thread else channel
        # Only a thread the bot opened for an image turns every message in it into an edit: a
        # new one, or the one we are in when it is such a thread (an edit made there becomes
        # its latest image, so the next message edits that, as on Slack).
        image_thread = own_thread or (
            status.guild is not None
            and await self._service.thread_image(PLATFORM, str(status.guild.id), str(thread.id), str(thread.id))
            is not None
        )
        context = {
            "channel": str(status.channel.id),
            "status": str(status.id),
            "thread": str(thread.id),
            "own_thread": image_thread,
        }
        if interaction is not None:
            context.update(
                app_id=str(interaction.application_id),
                token=interaction.token,
                token_expires=time.time() + TOKEN_LIFETIME,
            )
        return await self._service.attach_delivery(accepted.job_id, context)

    async def _refuse(self, interaction: discord.Interaction, text: str) -> None:
        await interaction.delete_original_response()
        await interaction.followup.send(render.clip(text), ephemeral=True)

    async def _confirm_view(self, outcome: NeedsConfirmation) -> discord.ui.View:
        return confirm_view(outcome, await self._service.hold_confirmation(outcome))

    # -- errors and helpers -----------------------------------------------

    async def on_tree_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        await self.on_interaction_error(interaction, error)

    async def on_interaction_error(self, interaction: discord.Interaction, error: Exception) -> None:
        # One place for failures in commands: one line to the user, never the exception text.
        said = apology(error, log, f"discord: interaction {interaction.id}")
        try:
            if interaction.response.is_done():
                # After defer(thinking=True) the first follow-up would replace the public
                # "thinking" message; say it privately instead.
                await interaction.delete_original_response()
                await interaction.followup.send(said, ephemeral=True)
            else:
                await interaction.response.send_message(said, ephemeral=True)
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("discord: could not tell the user about the failure: %r", exc)

    async def _with_attachments(self, request: R, attachments: list[discord.Attachment]) -> R:
        """`request` with its attachments read; first the core refuses what it can from their
        metadata (how many, what type, how big, a quota or budget used up), downloading nothing."""
        if not attachments:
            return request
        declared = [DeclaredFile(a.filename, a.size, a.content_type) for a in attachments]
        if (refused := await self._service.check_attachments(request, declared)) is not None:
            raise InvalidRequest(refused.detail)
        images = []
        for attachment in attachments:
            async with self._service.download_slot(PLATFORM, request.team, request.user):
                images.append(await self._read(attachment))
        return dataclasses.replace(request, images=tuple(images))

    async def _read(self, attachment: discord.Attachment) -> InputImage:
        """Streamed from the CDN (its signed URL needs no token), stopping at the size cap."""
        try:
            fetched = await fetch_capped(attachment.url, attachment.filename)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise InvalidRequest(f"I couldn't download {attachment.filename}.") from exc
        if fetched.status != 200:
            raise InvalidRequest(f"I couldn't download {attachment.filename}.")
        return InputImage(data=fetched.data, mime=attachment.content_type or "image/png")


async def _quietly(telling) -> None:
    """Tell the user something when the platform may already be failing us."""
    try:
        await telling
    except discord.HTTPException as exc:
        log.warning("discord: could not tell the user: %s %s", exc.status, exc.text)
    except (aiohttp.ClientError, TimeoutError) as exc:  # the connection itself failed
        log.warning("discord: could not tell the user: %r", exc)


def _press_key(interaction: discord.Interaction, button: str) -> str:
    """The message, the button (with its job or question) and the user."""
    message = str(interaction.message.id) if interaction.message else ""
    return press_key(PLATFORM, message, button, str(interaction.user.id))


def _asked_by(interaction: discord.Interaction) -> dict[str, Any]:
    """Who asked, where, and the key that makes a replayed interaction the same request."""
    where = {
        "team": str(interaction.guild_id),
        "channel": _budget_channel(interaction.channel),
        # Where it was asked (a thread, perhaps): an approval of it is posted there.
        "delivery": {"asked_in": str(interaction.channel_id)},
    }
    who = {"user": str(interaction.user.id), "platform": PLATFORM, **_standing(interaction)}
    return {**where, **who, "announced": True, "idempotency_key": f"discord:interaction:{interaction.id}"}


def _standing(interaction: discord.Interaction) -> dict[str, Any]:
    """The asker's roles, as the interaction carries them, and whether they have Manage
    Server (or Administrator) in this channel: a moderator, whom roles never limit."""
    admin = bool(interaction.permissions.manage_guild or interaction.permissions.administrator)
    return {**member_standing(interaction.user), "platform_admin": admin}


def _budget_channel(channel) -> str:
    """The channel budgets and channel rules apply to: a thread counts as its parent."""
    return str(channel.parent_id if isinstance(channel, discord.Thread) else channel.id)


def _image_attachments(message: discord.Message) -> list[discord.Attachment]:
    return [a for a in message.attachments if (a.content_type or "").startswith("image/")]
