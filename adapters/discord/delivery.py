"""Discord's side of delivering a job (adapters/delivery.py runs the steps).

Status edits use the interaction token while it lives (15 minutes) and the
bot token after; images are always posted with the bot token, in the thread
opened on the status message. So a job that waits hours in a queue still
arrives. A reply to the image, or (in a thread the bot opened for it) any
message in the thread, edits it.

A post whose message was created but whose answer was lost (a 5xx) must not
be posted again when retried: discord.py retries some 5xx itself, and the
outbox retries the delivery. Each image post carries a nonce of its job with
enforce_nonce (Discord then returns the message it already created, for a few
minutes), and a retry after that looks in the thread for the job's image first.
"""

from __future__ import annotations

import asyncio
import io
import time
from typing import TYPE_CHECKING, Any

import discord

from adapters import delivery
from adapters.discord import render
from adapters.discord.components import result_view
from adapters.status import caption
from bot import images
from bot.notify import GiveUp, Unavailable
from bot.types import CheckedImage, Delivery, Job

if TYPE_CHECKING:
    from adapters.discord.client import ImagineClient  # noqa: F401 (named in the base class below)

PLATFORM = "discord"
TOKEN_LIFETIME = 14 * 60  # Discord's is 15 minutes; stop using it a little early
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # outside a guild
POSTING_KEY = "posting_image"  # in the job's delivery context once an image post has begun
RECENT = 50  # messages of the thread searched for an image an earlier attempt posted


class DiscordDelivery(delivery.Delivers["ImagineClient"]):
    platform = PLATFORM
    status_key = "status"
    posted_key = "result_message"
    marks = render.MARKS

    async def deliver(self, item: Delivery, job: Job) -> None:
        try:
            await super().deliver(item, job)
        except (discord.Forbidden, discord.NotFound) as exc:
            # Lost access or the channel is gone: retrying cannot help.
            raise GiveUp(f"{exc.status} {exc.text}") from exc
        except discord.RateLimited as exc:  # longer than discord.py waits by itself
            raise Unavailable("Discord rate limited", exc.retry_after) from exc
        except discord.HTTPException as exc:
            if exc.status == 429 or exc.status >= 500:  # Discord is refusing for now: back off, then resume
                raise Unavailable(f"Discord answered {exc.status}") from exc
            raise

    async def edit_status(self, job: Job, where: dict[str, Any], line: str, *, done: bool = False) -> None:
        edit = job.kind == "edit" or job.spec.parent_image_id is not None
        content = render.status_message(job.spec.prompt, job.user, line, edit=edit)
        if where.get("token") and time.time() < float(where.get("token_expires", 0)):
            webhook = discord.Webhook.partial(int(where["app_id"]), where["token"], client=self._client)
            try:
                await webhook.edit_message(int(where["status"]), content=content)
                return
            except discord.HTTPException as exc:
                if exc.status != 401:
                    raise
                # The interaction token expired early: fall through to the bot token.
        channel = self._client.channel(int(where["channel"]))
        await channel.get_partial_message(int(where["status"])).edit(content=content)

    async def post_image(self, job: Job, where: dict[str, Any], result: dict[str, Any]) -> str:
        stored = await self._service.image(result["image_id"])
        if stored is None:  # retried, as any failure to post is
            raise LookupError(f"image {result['image_id']} of job {job.id} is gone")
        thread = self._client.channel(int(where["thread"]))
        if where.get(POSTING_KEY) and (earlier := await self._posted_before(thread, job)) is not None:
            return earlier  # an earlier attempt posted it; only its answer was lost
        # Recorded before posting: a retry then looks for the image before posting again.
        await self._service.attach_delivery(job.id, {POSTING_KEY: True})
        limit = thread.guild.filesize_limit if getattr(thread, "guild", None) else DEFAULT_UPLOAD_LIMIT
        words = discord.utils.escape_mentions(caption(result))
        image = CheckedImage(stored.data, stored.mime, stored.width, stored.height, stored.sha256)
        for _ in range(3):
            # Re-encoding a 4K image takes a second of CPU: keep it off the event loop.
            fitted, note = await asyncio.to_thread(images.fit, image, limit)
            extension = "jpg" if fitted.mime == "image/jpeg" else "png"
            try:
                posted = await thread.send(
                    render.clip(f"{words}\n{note}" if note else words),
                    view=result_view(job.id, edit=job.spec.parent_image_id is not None),
                    file=discord.File(io.BytesIO(fitted.data), filename=f"imagine-{job.id}.{extension}"),
                    nonce=f"imagine-{job.id}",  # with enforce_nonce: a repeat returns the first message
                )
                return str(posted.id)
            except discord.HTTPException as exc:
                if exc.status != 413:
                    raise
                # The channel's real limit is lower than the guild's: shrink and try again.
                limit = min(limit, len(fitted.data)) // 2
        raise GiveUp(f"job {job.id}: the image does not fit this channel's upload limit")

    async def _posted_before(self, thread: Any, job: Job) -> str | None:
        """The id of the job's image if an earlier attempt posted it in the thread."""
        me = self._client.user.id if self._client.user else None
        async for message in thread.history(limit=RECENT):
            if message.author.id == me and any(
                a.filename.startswith(f"imagine-{job.id}.") for a in message.attachments
            ):
                return str(message.id)
        return None

    def reply_keys(self, where: dict[str, Any], posted: str | None) -> list[delivery.ReplyKey]:
        if posted is not None:  # a reply to the image itself
            return [(where["thread"], f"msg:{posted}")]
        return thread_keys(where)


def thread_keys(where: dict[str, Any]) -> list[delivery.ReplyKey]:
    """Only a thread the bot opened for an image turns every message in it into an edit
    (of the thread's latest image)."""
    thread = where["thread"]
    return [(thread, thread)] if where.get("own_thread", True) else []
