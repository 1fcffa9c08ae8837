"""Slack's side of delivering a job (adapters/delivery.py runs the steps): the
status message is edited with chat.update, the image is uploaded into the
status message's thread, and a reply in that thread edits the image."""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from adapters import delivery
from adapters.slack import render
from bot.types import Job

PLATFORM = "slack"


class SlackDelivery(delivery.Delivers[AsyncWebClient]):
    platform = PLATFORM
    status_key = "status_ts"
    posted_key = "file_id"
    marks = render.MARKS

    async def edit_status(self, job: Job, where: dict[str, Any], line: str, *, done: bool = False) -> None:
        # The buttons ([Reroll] [4K] [Delete]) come with the image.
        buttons = render.result_buttons(job.id) if done else None
        await self._client.chat_update(
            channel=where["channel"],
            ts=where["status_ts"],
            **render.status_message(job.spec.prompt, job.user, line, buttons=buttons, edit=bool(where.get("edit"))),
        )

    async def post_image(self, job: Job, where: dict[str, Any], result: dict[str, Any]) -> str:
        image = await self._service.image(result["image_id"])
        if image is None:  # retried, as any failure to post is
            raise LookupError(f"image {result['image_id']} of job {job.id} is gone")
        upload = await self._client.files_upload_v2(
            channel=where["channel"],
            thread_ts=where["thread_ts"],
            content=image.data,
            filename=f"imagine-{job.id}.png",
            title=job.spec.prompt[:200],
            initial_comment=f"{result['model_version']} · {render.money(result['cost_usd'])}",
        )
        return upload["file"]["id"]

    def reply_keys(self, where: dict[str, Any], posted: str | None) -> list[delivery.ReplyKey]:
        # Every reply in the status message's thread edits the newest image there.
        return [(where["channel"], where["thread_ts"])] if posted is None else []
