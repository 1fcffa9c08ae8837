"""Discord adapter on discord.py: slash commands, a context menu, replies and
persistent buttons in; status messages, threads and images out.

/imagine defers at once (Discord wants an answer within 3 s), submits to
the core, turns the deferred reply into the status message and opens a
thread on it. The outbox then drives `deliver`. Status edits use the
interaction token while it lives (15 minutes) and the bot token after,
and images are always posted with the bot token, so a job that waits
hours in a queue still arrives.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import time
from typing import Any

import aiohttp
import discord
import yarl
from discord import app_commands

from adapters.discord import render
from adapters.presses import ALREADY_ON_IT, PRESS_WINDOW, OneAtATime, press_key
from adapters.status import NOT_STARTED
from bot import images
from bot.notify import GiveUp, RetryLater
from bot.providers.errors import user_message_for
from bot.service import Caller, ImagineService
from bot.settings import Settings
from bot.types import (
    Accepted, CheckedImage, Delivery, EditRequest, ImagineRequest, InputImage, InvalidRequest, Job, NeedsConfirmation,
    Outcome, Refused,
)
from bot.money.budgets import Period

log = logging.getLogger(__name__)
PLATFORM = "discord"
SORRY = "Sorry, something went wrong on my side. Nothing was charged; please try again."
TOKEN_LIFETIME = 14 * 60  # Discord's is 15 minutes; stop using it a little early
MAX_ATTACHMENT_BYTES = 14 * 1024 * 1024
# Every aspect ratio some model in the catalog takes (Discord allows 25 choices).
RATIOS = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "1:4", "4:1", "1:8", "8:1"]
NO_PINGS = discord.AllowedMentions(everyone=False, roles=False, users=True, replied_user=False)


# The lanes by the names Slack's flags use (--relax, --batch, --priority); no choice is Standard.
LANE_CHOICES = [app_commands.Choice(name="relax (Flex): half price, within 15 minutes", value="flex"),
                app_commands.Choice(name="batch: half price, within hours", value="batch"),
                app_commands.Choice(name="priority: dearer, never shed", value="priority")]


def _choices(values: list[str]) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=v, value=v) for v in values]


class JobButton(discord.ui.DynamicItem[discord.ui.Button], template=r"imagine:(?P<action>reroll|4k|delete):(?P<job>\d+)"):
    """[Reroll] [4K] [Delete] under a result; the custom_id carries everything, so
    the buttons keep working after a restart."""

    LABELS = {"reroll": ("Reroll", discord.ButtonStyle.secondary), "4k": ("4K", discord.ButtonStyle.secondary),
              "delete": ("Delete", discord.ButtonStyle.danger)}

    def __init__(self, action: str, job_id: int) -> None:
        label, style = self.LABELS[action]
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"imagine:{action}:{job_id}"))
        self.action, self.job_id = action, job_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        return cls(match["action"], int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.client.adapter.on_job_button(interaction, self.action, self.job_id)


class ConfirmButton(discord.ui.DynamicItem[discord.ui.Button], template=r"imagine:(?P<action>run|flash):(?P<token>[\w-]+)"):
    """[Run] [Use Flash] for a request that needs a confirmation; the token
    names the request kept in the database."""

    def __init__(self, action: str, token: str, label: str | None = None) -> None:
        style = discord.ButtonStyle.primary if action == "run" else discord.ButtonStyle.secondary
        super().__init__(discord.ui.Button(label=label or action.title(), style=style,
                                           custom_id=f"imagine:{action}:{token}"))
        self.action, self.token = action, token

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        return cls(match["action"], match["token"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.client.adapter.on_confirm(interaction, self.token, use_flash=self.action == "flash")


class EditModal(discord.ui.Modal, title="Edit image"):
    instruction = discord.ui.TextInput(label="What should change?", style=discord.TextStyle.paragraph,
                                       max_length=2000)

    def __init__(self, adapter: DiscordAdapter, target: discord.Message) -> None:
        super().__init__()
        self.adapter, self.target = adapter, target

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.adapter.on_edit_modal(interaction, self.target, self.instruction.value)

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await self.adapter.on_interaction_error(interaction, error)


class ImagineClient(discord.Client):
    def __init__(self, adapter: DiscordAdapter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.adapter = adapter
        self.tree = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(JobButton, ConfirmButton)
        self.tree.on_error = self.adapter.on_tree_error
        self.adapter.add_commands(self.tree)
        await self.adapter.point_gateway()
        await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        try:
            await self.adapter.on_message(message)
        except Exception:
            log.exception("discord: handling a message failed")

    # At start-up every guild the bot is in arrives as available; a new one as a join.
    async def on_guild_available(self, guild: discord.Guild) -> None:
        await self.adapter.check_guild(guild)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.adapter.check_guild(guild)


class DiscordAdapter:
    platform = PLATFORM

    def __init__(self, settings: Settings, service: ImagineService) -> None:
        self._token = settings.discord_token.get_secret_value()
        self._api_url = settings.discord_api_url
        self._alert_channel = int(settings.discord_alert_channel) if settings.discord_alert_channel else None
        self._service = service
        intents = discord.Intents.default()
        intents.message_content = True  # reply-to-edit reads the reply's text and attachments
        self.client = ImagineClient(self, intents=intents, allowed_mentions=NO_PINGS)
        self._one_at_a_time = OneAtATime()

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        if self._api_url:
            # Tests and proxies: point discord.py's REST client (interaction
            # webhooks included, they share the Route class) elsewhere.
            discord.http.Route.BASE = self._api_url.rstrip("/")
        await self.client.login(self._token)
        # connect() runs for the bot's lifetime, reconnecting on its own; it only
        # returns on a fatal error (bad token, Message Content intent not enabled).
        self._gateway = asyncio.create_task(self.client.connect(reconnect=True), name="discord-gateway")
        self._gateway.add_done_callback(_report_gateway_end)

    async def point_gateway(self) -> None:
        """With DISCORD_API_URL, take the gateway URL from that API, as Discord intends;
        discord.py otherwise always connects to its built-in wss://gateway.discord.gg."""
        if self._api_url:
            _, url, _ = await self.client.http.get_bot_gateway()
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)

    async def close(self) -> None:
        await self.client.close()
        if getattr(self, "_gateway", None) is not None:
            await asyncio.gather(self._gateway, return_exceptions=True)

    async def check_guild(self, guild: discord.Guild) -> None:
        """Leave a guild that is not on the [access] teams allow-list: the app may be
        public, and anyone could add it to their server."""
        if self._service.team_allowed(str(guild.id)):
            return
        try:
            await guild.leave()
        except discord.HTTPException as exc:  # its requests are still refused by the core
            log.warning("discord: guild %s (%s) is not on the [access] teams allow-list, and leaving it "
                        "failed: %s %s", guild.id, guild.name, exc.status, exc.text)
            return
        log.warning("discord: left guild %s (%s): not on the [access] teams allow-list", guild.id, guild.name)

    # -- commands ---------------------------------------------------------

    def add_commands(self, tree: app_commands.CommandTree) -> None:
        adapter = self

        @app_commands.command(name="imagine", description="Make an image from a prompt")
        @app_commands.guild_only()
        @app_commands.describe(prompt="What to draw", aspect="Aspect ratio", size="Image size",
                               model="Model (pro is best, flash is cheaper)",
                               lane="relax or batch: half price, slower; priority: dearer, never shed",
                               image="An image to edit or use as a reference")
        @app_commands.choices(aspect=_choices(RATIOS), size=_choices(["512", "1K", "2K", "4K"]),
                              model=_choices(["pro", "flash", "lite"]), lane=LANE_CHOICES)
        async def imagine(interaction: discord.Interaction, prompt: app_commands.Range[str, 1, 2000],
                          aspect: str | None = None, size: str | None = None, model: str | None = None,
                          lane: str | None = None, image: discord.Attachment | None = None) -> None:
            await adapter.on_imagine(interaction, prompt, aspect, size, model, lane, image)

        @app_commands.command(name="imagine-usage", description="Your spend and the server's budget")
        @app_commands.guild_only()
        async def usage(interaction: discord.Interaction) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            report = await adapter._service.usage(str(interaction.guild_id), str(interaction.user.id),
                                                  _budget_channel(interaction.channel), platform=PLATFORM)
            text = report.detail if isinstance(report, Refused) else render.usage(report)
            await interaction.followup.send(text, ephemeral=True)

        @app_commands.command(name="imagine-budget", description="Moderators: show or set the server's budget")
        @app_commands.guild_only()
        @app_commands.default_permissions(manage_guild=True)
        @app_commands.describe(action="show or set", usd="New limit in dollars (for set)", period="Budget period")
        @app_commands.choices(action=_choices(["show", "set"]), period=_choices(["day", "week", "month"]))
        async def budget(interaction: discord.Interaction, action: str = "show", usd: str | None = None,
                         period: str = Period.MONTH.value) -> None:
            await adapter.on_budget(interaction, action, usd, period)

        # Budgets belong to a server: in DMs nothing would pay for the image.
        edit_menu = app_commands.guild_only(app_commands.ContextMenu(name="Edit image", callback=adapter.on_edit_menu))
        for command in (imagine, usage, budget, edit_menu):
            tree.add_command(command)

    def _caller(self, interaction: discord.Interaction) -> Caller:
        # Manage Server in this channel counts as a moderator; the core checks again.
        admin = bool(interaction.permissions.manage_guild or interaction.permissions.administrator)
        return Caller(team=str(interaction.guild_id), user=str(interaction.user.id), platform_admin=admin,
                      platform=PLATFORM)

    async def on_imagine(self, interaction: discord.Interaction, prompt: str, aspect, size, model, lane,
                         image: discord.Attachment | None) -> None:
        await interaction.response.defer(thinking=True)
        try:
            attachments = (await self._read(image),) if image else ()
        except InvalidRequest as exc:
            await self._refuse(interaction, str(exc))
            return
        request = ImagineRequest(
            team=str(interaction.guild_id), channel=_budget_channel(interaction.channel), user=str(interaction.user.id),
            platform=PLATFORM, prompt=prompt, aspect_ratio=aspect, size=size, model=model, lane=lane,
            images=attachments, announced=True, idempotency_key=f"discord:interaction:{interaction.id}")
        await self._present(interaction, await self._service.submit(request), prompt)

    async def on_budget(self, interaction: discord.Interaction, action: str, amount: str | None, period: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        caller = self._caller(interaction)
        if action == "set":
            if amount is None:
                text = "Say how much, e.g. `/imagine-budget set usd:50 period:month`."
            else:
                result = await self._service.set_budget(caller, amount, period)
                text = result.detail if isinstance(result, Refused) else (
                    f"Server budget set to {render.usd(result.limit_micros)} per {result.period.value}.")
        else:
            result = await self._service.show_budgets(caller)
            text = result.detail if isinstance(result, Refused) else render.budgets(result)
        await interaction.followup.send(text, ephemeral=True)

    async def on_edit_menu(self, interaction: discord.Interaction, message: discord.Message) -> None:
        if not _image_attachments(message):
            await interaction.response.send_message("That message has no image to edit.", ephemeral=True)
            return
        await interaction.response.send_modal(EditModal(self, message))

    async def on_edit_modal(self, interaction: discord.Interaction, target: discord.Message, instruction: str) -> None:
        await interaction.response.defer(thinking=True)
        image_id = await self._service.thread_image(PLATFORM, str(interaction.guild_id), str(target.channel.id),
                                                    f"msg:{target.id}")
        common = dict(team=str(interaction.guild_id), channel=_budget_channel(interaction.channel),
                      user=str(interaction.user.id), platform=PLATFORM, announced=True,
                      idempotency_key=f"discord:interaction:{interaction.id}")
        if image_id is not None:
            outcome = await self._service.edit(EditRequest(parent_image_id=image_id, instruction=instruction, **common))
        else:
            # Anyone's image: it goes to the model as the picture to edit.
            try:
                source = await self._read(_image_attachments(target)[0])
            except InvalidRequest as exc:
                await self._refuse(interaction, str(exc))
                return
            outcome = await self._service.submit(ImagineRequest(prompt=instruction, images=(source,), **common))
        await self._present(interaction, outcome, instruction, edit=True)

    async def on_message(self, message: discord.Message) -> None:
        """A reply to a bot image, or any message in a bot image thread, edits it."""
        if message.author.bot or message.guild is None or not message.content.strip():
            return
        guild = str(message.guild.id)
        image_id = None
        if message.reference and message.reference.message_id:
            image_id = await self._service.thread_image(PLATFORM, guild, str(message.reference.channel_id),
                                                        f"msg:{message.reference.message_id}")
        if image_id is None and isinstance(message.channel, discord.Thread):
            image_id = await self._service.thread_image(PLATFORM, guild, str(message.channel.id),
                                                        str(message.channel.id))
        if image_id is None:
            return
        try:
            attachments = tuple([await self._read(a) for a in message.attachments])
        except InvalidRequest as exc:
            await message.reply(str(exc), mention_author=False)
            return
        request = EditRequest(
            team=guild, channel=_budget_channel(message.channel), user=str(message.author.id), platform=PLATFORM,
            parent_image_id=image_id, instruction=message.content, images=attachments, announced=True,
            idempotency_key=f"discord:message:{message.id}")
        outcome = await self._service.edit(request)
        if isinstance(outcome, Accepted):
            if not outcome.duplicate:  # a duplicate is a replayed message: its status is out already
                status = functools.partial(message.reply, render.status_message(
                    message.content, str(message.author.id), render.queued(outcome), edit=True), mention_author=False)
                if not await self._announce(outcome, status, message.channel, None, message.content):
                    await _quietly(message.reply(SORRY, mention_author=False))
        elif isinstance(outcome, NeedsConfirmation):
            await message.reply(render.confirmation(outcome), view=await self._confirm_view(outcome),
                                mention_author=False)
        else:
            await message.reply(outcome.detail, mention_author=False)

    async def on_job_button(self, interaction: discord.Interaction, action: str, job_id: int) -> None:
        if action == "delete":
            await interaction.response.defer(ephemeral=True, thinking=True)  # answer first, then ask the store
            if not await self._service.may_delete(job_id, self._caller(interaction)):
                await interaction.followup.send(
                    "Only the person who asked for this image, or a moderator, can delete it.", ephemeral=True)
                return
            await interaction.message.delete()
            await interaction.followup.send("Deleted.", ephemeral=True)
            return
        await interaction.response.defer(thinking=True)
        job, _ = await self._service.status(job_id)
        outcome = await self._service.rerun(
            job_id, self._caller(interaction), platform=PLATFORM, channel=_budget_channel(interaction.channel),
            size="4K" if action == "4k" else None,
            idempotency_key=_press_key(interaction, f"{action}:{job_id}"), idempotency_window=PRESS_WINDOW)
        await self._present(interaction, outcome, job.spec.prompt if job else "")

    async def on_confirm(self, interaction: discord.Interaction, token: str, *, use_flash: bool) -> None:
        """[Run] / [Use Flash]: the answer is the core's outcome (a status, or the refusal)."""
        await interaction.response.defer(thinking=True)
        async with self._one_at_a_time(token):
            outcome, request = await self._service.confirm(
                token, self._caller(interaction), use_flash=use_flash,
                idempotency_key=_press_key(interaction, f"{'flash' if use_flash else 'run'}:{token}"),
                idempotency_window=PRESS_WINDOW)
        prompt = "" if request is None else (request.instruction if isinstance(request, EditRequest) else request.prompt)
        await self._present(interaction, outcome, prompt, edit=isinstance(request, EditRequest))

    # -- outcomes ---------------------------------------------------------

    async def _present(self, interaction: discord.Interaction, outcome: Outcome, prompt: str, *,
                       edit: bool = False) -> None:
        """Turn the deferred reply into a status message, or into a private note."""
        if isinstance(outcome, Refused):
            await self._refuse(interaction, outcome.detail)
        elif isinstance(outcome, NeedsConfirmation):
            await interaction.delete_original_response()
            await interaction.followup.send(render.confirmation(outcome), view=await self._confirm_view(outcome),
                                            ephemeral=True)
        elif outcome.duplicate:  # a second press of a button: the first one's job is running
            await self._refuse(interaction, ALREADY_ON_IT)
        else:
            status = functools.partial(interaction.edit_original_response, content=render.status_message(
                prompt, str(interaction.user.id), render.queued(outcome), edit=edit))
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
            log.warning("discord: job %d could not be announced (%s: %s); cancelling it",
                        accepted.job_id, type(exc).__name__, exc)
            if not await self._service.cancel(accepted.job_id):
                log.error("discord: job %d could not be cancelled: it is no longer queued", accepted.job_id)
                return True
            if status is not None:  # not "Queued" for a job that will never run
                await _quietly(status.edit(content=render.failed(NOT_STARTED)))
            return False
        for alert in accepted.alerts if self._alert_channel else ():
            try:
                await self._channel(self._alert_channel).send(f"💰 {alert}")
            except discord.HTTPException:  # the job is accepted; a lost alert must not say otherwise
                log.exception("discord: could not post a budget alert")
        return True

    async def _attach(self, accepted: Accepted, status: discord.Message, channel, interaction, prompt: str) -> bool:
        """Open the result thread (or use the one we are in) and record where the job reports;
        False when the job was cancelled meanwhile."""
        own_thread = not isinstance(channel, discord.Thread)
        thread = await status.create_thread(name=render.thread_name(prompt)) if own_thread else channel
        context = {"channel": str(status.channel.id), "status": str(status.id), "thread": str(thread.id),
                   # Only a thread the bot opened for the image turns every message in it into an edit.
                   "own_thread": own_thread}
        if interaction is not None:
            context.update(app_id=str(interaction.application_id), token=interaction.token,
                           token_expires=time.time() + TOKEN_LIFETIME)
        return await self._service.attach_delivery(accepted.job_id, context)

    async def _refuse(self, interaction: discord.Interaction, text: str) -> None:
        await interaction.delete_original_response()
        await interaction.followup.send(render.clip(text), ephemeral=True)

    async def _confirm_view(self, outcome: NeedsConfirmation) -> discord.ui.View:
        token = await self._service.hold_confirmation(outcome)
        view = discord.ui.View(timeout=None)
        view.add_item(ConfirmButton("run", token, f"Run ({render.money(outcome.estimate_usd)})"))
        if outcome.flash_estimate_usd is not None:
            view.add_item(ConfirmButton("flash", token, f"Use Flash ({render.money(outcome.flash_estimate_usd)})"))
        return view

    # -- the notifier port ------------------------------------------------

    async def alert(self, text: str) -> None:
        """An operator alert from the outbox (error rate, latency); a failure here is retried."""
        if self._alert_channel is None:
            return
        try:
            await self._channel(self._alert_channel).send(f"🚨 {render.clip(text)}")
        except (discord.Forbidden, discord.NotFound) as exc:
            raise GiveUp(f"alert channel: {exc.status} {exc.text}") from exc

    async def deliver(self, delivery: Delivery, job: Job) -> None:
        where = job.delivery
        if "status" not in where:
            raise RetryLater(f"job {job.id} has no status message yet")
        try:
            await self._deliver(delivery, job, where)
        except (discord.Forbidden, discord.NotFound) as exc:
            # Lost access or the channel is gone: retrying cannot help.
            raise GiveUp(f"{exc.status} {exc.text}") from exc

    async def _deliver(self, delivery: Delivery, job: Job, where: dict[str, Any]) -> None:
        edit = job.kind == "edit" or job.spec.parent_image_id is not None
        if delivery.kind == "started":
            status = render.generating(job.spec.model_alias, job.spec.size, job.attempt,
                                       relaxed="batch" in delivery.payload,
                                       lane=job.spec.lane.value, relaned="relaned" in delivery.payload)
            await self._edit_status(where, render.status_message(job.spec.prompt, job.user, status, edit=edit))
            return
        if delivery.kind == "result":
            result = delivery.payload
            if where.get("own_thread", True):
                # Before posting: a reply in the thread can arrive the moment the image shows.
                await self._service.remember_thread(PLATFORM, job.team, where["thread"], where["thread"],
                                                    result["image_id"])
            if "result_message" not in where:  # a retried delivery must not post twice
                posted = await self._post_image(job, result, int(where["thread"]))
                await self._service.attach_delivery(job.id, {"result_message": str(posted.id)})
                await self._service.remember_thread(PLATFORM, job.team, where["thread"], f"msg:{posted.id}",
                                                    result["image_id"])
            line = render.done(result)
        else:
            line = render.failed(user_message_for(delivery.payload.get("error_class")))
        await self._edit_status(where, render.status_message(job.spec.prompt, job.user, line, edit=edit))

    async def _post_image(self, job: Job, result: dict[str, Any], thread_id: int) -> discord.Message:
        stored = await self._service.image(result["image_id"])
        thread = self._channel(thread_id)
        limit = thread.guild.filesize_limit if getattr(thread, "guild", None) else 10 * 1024 * 1024
        view = discord.ui.View(timeout=None)
        for action in ("reroll", "4k", "delete"):
            view.add_item(JobButton(action, job.id))
        caption = f"{result['model_version']} · {render.money(result['cost_usd'])}"
        image = CheckedImage(stored.data, stored.mime, stored.width, stored.height, stored.sha256)
        for _ in range(3):
            # Re-encoding a 4K image takes a second of CPU: keep it off the event loop.
            fitted, note = await asyncio.to_thread(images.fit, image, limit)
            extension = "jpg" if fitted.mime == "image/jpeg" else "png"
            try:
                return await thread.send(
                    render.clip(f"{caption}\n{note}" if note else caption), view=view,
                    file=discord.File(io.BytesIO(fitted.data), filename=f"imagine-{job.id}.{extension}"))
            except discord.HTTPException as exc:
                if exc.status != 413:
                    raise
                # The channel's real limit is lower than the guild's: shrink and try again.
                limit = min(limit, len(fitted.data)) // 2
        raise GiveUp(f"job {job.id}: the image does not fit this channel's upload limit")

    async def _edit_status(self, where: dict[str, Any], content: str) -> None:
        if where.get("token") and time.time() < float(where.get("token_expires", 0)):
            webhook = discord.Webhook.partial(int(where["app_id"]), where["token"], client=self.client)
            try:
                await webhook.edit_message(int(where["status"]), content=content)
                return
            except discord.HTTPException as exc:
                if exc.status != 401:
                    raise
                # The interaction token expired early: fall through to the bot token.
        await self._channel(int(where["channel"])).get_partial_message(int(where["status"])).edit(content=content)

    # -- errors and helpers -----------------------------------------------

    async def on_tree_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        await self.on_interaction_error(interaction, error)

    async def on_interaction_error(self, interaction: discord.Interaction, error: Exception) -> None:
        # One place for failures in commands: the trace to the log, one line to the user.
        log.error("discord: interaction %s failed", interaction.id, exc_info=error)
        try:
            if interaction.response.is_done():
                # After defer(thinking=True) the first follow-up would replace the public
                # "thinking" message; say it privately instead.
                await interaction.delete_original_response()
                await interaction.followup.send(SORRY, ephemeral=True)
            else:
                await interaction.response.send_message(SORRY, ephemeral=True)
        except discord.HTTPException:
            log.exception("discord: could not tell the user about the failure")

    def _channel(self, channel_id: int):
        channel = self.client.get_channel(channel_id)
        return channel if channel is not None else self.client.get_partial_messageable(channel_id)

    async def _read(self, attachment: discord.Attachment) -> InputImage:
        if attachment.size > MAX_ATTACHMENT_BYTES:
            raise InvalidRequest(f"{attachment.filename} is larger than 14 MB.")
        if attachment.content_type and not attachment.content_type.startswith("image/"):
            raise InvalidRequest(f"{attachment.filename} is not an image (PNG, JPEG or WebP).")
        try:
            data = await attachment.read()
        except (discord.HTTPException, aiohttp.ClientError) as exc:
            raise InvalidRequest(f"I couldn't download {attachment.filename}.") from exc
        return InputImage(data=data, mime=attachment.content_type or "image/png")


async def _quietly(telling) -> None:
    """Tell the user something when the platform may already be failing us."""
    try:
        await telling
    except discord.HTTPException as exc:
        log.warning("discord: could not tell the user: %s %s", exc.status, exc.text)


def _press_key(interaction: discord.Interaction, button: str) -> str:
    """The message, the button (with its job or question) and the user."""
    message = str(interaction.message.id) if interaction.message else ""
    return press_key(PLATFORM, message, button, str(interaction.user.id))


def _report_gateway_end(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        error = task.exception()
        hint = (" Turn on the Message Content intent in the Developer Portal (Bot -> Privileged Gateway Intents)."
                if isinstance(error, discord.PrivilegedIntentsRequired) else "")
        log.critical("discord: the gateway connection ended for good: %s.%s", error, hint, exc_info=error)


def _budget_channel(channel) -> str:
    """The channel budgets and channel rules apply to: a thread counts as its parent."""
    return str(channel.parent_id if isinstance(channel, discord.Thread) else channel.id)


def _image_attachments(message: discord.Message) -> list[discord.Attachment]:
    return [a for a in message.attachments if (a.content_type or "").startswith("image/")]

