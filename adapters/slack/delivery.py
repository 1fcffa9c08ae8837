"""Slack's side of delivering a job (adapters/delivery.py runs the steps): the
status message is edited with chat.update, the image is uploaded into the
status message's thread, and a reply in that thread edits the image.

An upload is three calls (files.getUploadURLExternal, the POST of the bytes,
files.completeUploadExternal, which shares the file into the thread). If the
last one takes effect but its answer is lost (a 5xx, a dropped connection), a
retried delivery must not post the image again: the file id is recorded before
completing, and a retry that finds one asks files.info whether it was shared.
Slack shares a completed file asynchronously (and now and then drops the share),
so a completed file not shared yet is waited for a while before uploading afresh.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from adapters import delivery
from adapters.slack import render
from adapters.status import caption
from bot.notify import Unavailable
from bot.types import Delivery, Job

PLATFORM = "slack"
UPLOAD_KEY = "upload_file_id"  # in the job's delivery context once an upload has begun
SHARE_CHECKS_KEY = "share_checks"  # times a retry found that upload completed but not yet shared
SHARE_CHECKS, SHARE_WAIT = 5, 2.0  # so a share may take ~10 s to show before the image is uploaded again


class SlackDelivery(delivery.Delivers[AsyncWebClient]):
    platform = PLATFORM
    status_key = "status_ts"
    posted_key = "file_id"
    marks = render.MARKS

    async def deliver(self, item: Delivery, job: Job) -> None:
        try:
            await super().deliver(item, job)
        except SlackApiError as exc:
            status = exc.response.status_code
            if status == 429 or status >= 500:  # Slack is refusing for now: back off, then resume
                after = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after")
                raise Unavailable(f"Slack answered {status}", float(after) if after else None) from exc
            raise
        except (SlackRequestError, aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"Slack upload failed: {exc}") from exc

    async def edit_status(self, job: Job, where: dict[str, Any], line: str, *, done: bool = False) -> None:
        # The buttons ([Reroll] [4K] [Undo] [History] [Delete]) come with the image.
        buttons = render.result_buttons(job.id, edit=job.spec.parent_image_id is not None) if done else None
        await self._client.chat_update(
            channel=where["channel"],
            ts=where["status_ts"],
            **render.status_message(job.spec.prompt, job.user, line, buttons=buttons, edit=bool(where.get("edit"))),
        )

    async def post_image(self, job: Job, where: dict[str, Any], result: dict[str, Any]) -> str:
        if earlier := where.get(UPLOAD_KEY):
            state = await self._upload_state(earlier, where["channel"])
            if state == "shared":
                return str(earlier)  # an earlier attempt posted it; only its answer was lost
            checks = int(where.get(SHARE_CHECKS_KEY, 0))
            if state == "completed" and checks < SHARE_CHECKS:
                await self._service.attach_delivery(job.id, {SHARE_CHECKS_KEY: checks + 1})
                raise Unavailable(f"upload {earlier} is completed but not shared yet", SHARE_WAIT)
        image = await self._service.image(result["image_id"])
        if image is None:  # retried, as any failure to post is
            raise LookupError(f"image {result['image_id']} of job {job.id} is gone")
        filename = f"imagine-{job.id}.png"
        target = await self._client.files_getUploadURLExternal(filename=filename, length=len(image.data))
        file_id = str(target["file_id"])
        # Recorded before the file can be shared: a retry then checks it instead of posting again.
        await self._service.attach_delivery(job.id, {UPLOAD_KEY: file_id})
        where[UPLOAD_KEY] = file_id
        await self._upload(str(target["upload_url"]), image.data)
        await self._client.files_completeUploadExternal(
            files=[{"id": file_id, "title": job.spec.prompt[:200]}],
            channel_id=where["channel"],
            thread_ts=where["thread_ts"],
            initial_comment=render.escape(caption(result)),
        )
        return file_id

    async def _upload(self, url: str, data: bytes) -> None:
        session = self._client.session or aiohttp.ClientSession()
        try:
            async with session.post(url, data=data, headers={"Content-Type": "application/octet-stream"}) as answer:
                if answer.status != 200:
                    raise SlackRequestError(f"upload answered {answer.status}: {(await answer.text())[:200]}")
        finally:
            if session is not self._client.session:
                await session.close()

    async def _upload_state(self, file_id: str, channel: str) -> str:
        """ "shared" into `channel`, "completed" (no share seen yet) or "missing" (never completed)."""
        try:
            info = await self._client.files_info(file=file_id)
        except SlackApiError as exc:
            if exc.response.get("error") == "file_not_found":  # never completed: upload afresh
                return "missing"
            raise
        file = info["file"]
        shares = file.get("shares") or {}
        places = {*file.get("channels", []), *file.get("groups", []), *file.get("ims", [])}
        places.update(shares.get("public", {}), shares.get("private", {}))
        return "shared" if channel in places else "completed"

    def reply_keys(self, where: dict[str, Any], posted: str | None) -> list[delivery.ReplyKey]:
        return thread_keys(where) if posted is None else []


def thread_keys(where: dict[str, Any]) -> list[delivery.ReplyKey]:
    """Every reply in the status message's thread edits the newest image there."""
    return [(where["channel"], where["thread_ts"])]
