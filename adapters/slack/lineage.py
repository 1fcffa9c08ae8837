"""Slack's side of an image's thread lineage: [Undo] under an edit, [History] under every
image, and /imagine-history.

Slack sends a slash command no thread_ts, and offers no slash commands inside threads, so a
thread's history comes from the [History] button under any image of it; /imagine-history
(in a channel) lists the user's last 10 images. Each answer is the core's, in its words
(bot/lineage_text.py); only [Undo]'s outcome is said in the thread, for everyone there."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adapters.slack import render
from adapters.slack.delivery import PLATFORM, thread_keys
from adapters.slack.parse import team_of
from bot import lineage_text
from bot.types import Refused

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from adapters.slack.listeners import Listeners

IN_A_THREAD = "For one image's thread, press History under any image in it."
NOT_A_THREAD_ANY_MORE = "This thread has no image to edit any more (it was deleted)."


class LineageListeners:
    def __init__(self, listeners: Listeners) -> None:
        self._listeners = listeners
        self._service = listeners._service

    def register(self, app: AsyncApp) -> None:
        listeners = self._listeners
        app.command("/imagine-history")(listeners._acked(self._on_history_command))
        app.action(render.ACTION_UNDO)(listeners._acked_press(self._on_undo))
        app.action(render.ACTION_HISTORY)(listeners._acked_press(self._on_history_button))

    async def _on_undo(self, body: dict, action: dict, respond) -> None:
        caller = await self._listeners.presser(body)
        job_id = int(action["value"])
        undone = await self._service.undo(job_id, caller, PLATFORM, thread_keys)
        if isinstance(undone, Refused):
            await _privately(respond, undone.detail)
            return
        job, _ = await self._service.status(job_id)
        where: dict[str, Any] = job.delivery if job else {}
        said = render.escape(lineage_text.undone(undone.image, undone.now_latest))
        await self._listeners.client.chat_postMessage(
            channel=where.get("channel") or body["channel"]["id"],
            thread_ts=where.get("thread_ts"),
            text=f":leftwards_arrow_with_hook: <@{caller.user}> {said}",
        )

    async def _on_history_button(self, body: dict, action: dict, respond) -> None:
        # The core decides whose job it is: a linked workspace's is its organisation's.
        lineage = await self._service.job_thread_history(int(action["value"]), team_of(body), PLATFORM, _thread_of)
        if isinstance(lineage, Refused):
            text = lineage.detail
        else:
            text = NOT_A_THREAD_ANY_MORE if lineage is None else render.escape(lineage_text.history(lineage))
        await _privately(respond, text)

    async def _on_history_command(self, command: dict, respond) -> None:
        images = await self._service.recent_images(command["team_id"], command["user_id"], PLATFORM)
        if isinstance(images, Refused):
            text = images.detail
        else:
            text = f"{render.escape(lineage_text.recent(images))}\n{IN_A_THREAD}"
        await respond(text=text, response_type="ephemeral")


async def _privately(respond, text: str) -> None:
    await respond(text=text, response_type="ephemeral", replace_original=False)


def _thread_of(where: dict[str, Any]) -> list[tuple[str, str]]:
    return thread_keys(where) if "thread_ts" in where else []
