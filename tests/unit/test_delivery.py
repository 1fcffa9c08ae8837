"""The delivery steps every platform shares (adapters/delivery.py), against a
recording platform and core: no database, no network."""

from __future__ import annotations

import time
from typing import Any

import pytest

from adapters import delivery
from adapters.status import Marks
from bot.notify import RetryLater
from bot.providers.errors import BlockedError
from bot.types import Delivery, GenerationSpec, Job, JobState, Lane, StoredImage

MARKS = Marks(queued_mark="[q]", note_mark="[i]", generating_mark="[g]", done_mark="[d]", failed_mark="[f]")
RESULT = {
    "image_id": 7,
    "model_version": "gemini-3-pro-image",
    "size": "1K",
    "aspect_ratio": "1:1",
    "cost_usd": "0.134",
    "elapsed_s": 12.0,
}


class Recorder:
    """A platform and a core that write down, in one list, what delivery asked of them."""

    platform = "chat"
    status_key = "status"
    posted_key = "posted"
    marks = MARKS

    def __init__(self, *, deleted: frozenset[int] = frozenset()) -> None:
        self.log: list[tuple] = []
        self.deleted = deleted

    async def edit_status(self, job: Job, where: dict[str, Any], line: str, *, done: bool = False) -> None:
        self.log.append(("status", line, done))

    async def post_image(self, job: Job, where: dict[str, Any], result: dict[str, Any]) -> str:
        self.log.append(("post", result["image_id"], result.get("lineage")))
        return "m1"

    def reply_keys(self, where: dict[str, Any], posted: str | None) -> list[delivery.ReplyKey]:
        return [(where["channel"], posted or "thread")]

    async def attach_delivery(self, job_id: int, context: dict[str, Any]) -> bool:
        self.log.append(("attach", job_id, context))
        return True

    async def remember_thread(self, platform: str, team: str, channel: str, thread_id: str, image_id: int) -> None:
        self.log.append(("remember", platform, team, channel, thread_id, image_id))

    async def posted_line(self, team: str, image_id: int, *, cached: bool = False) -> str | None:
        return f"image {image_id} of {team}{' (cached)' if cached else ''}"

    async def image(self, image_id: int) -> StoredImage | None:
        if image_id in self.deleted:
            return None
        return StoredImage(image_id, 3, "output", "image/png", 8, 8, "0" * 64, b"png")


def job(where: dict[str, Any], *, attempt: int = 1) -> Job:
    spec = GenerationSpec(
        prompt="a koi pond",
        model_alias="pro",
        model_id="gemini-3-pro-image",
        aspect_ratio="1:1",
        size="1K",
        lane=Lane.STANDARD,
    )
    return Job(
        id=3,
        team="T1",
        channel="C1",
        user="U1",
        platform="chat",
        kind="imagine",
        spec=spec,
        state=JobState.RUNNING,
        attempt=attempt,
        max_attempts=3,
        delivery=where,
        created_at=time.time(),
    )


def item(kind: str, payload: dict[str, Any] | None = None) -> Delivery:
    return Delivery(id=1, key=f"3:{kind}", job_id=3, platform="chat", kind=kind, payload=payload or {}, attempts=1)


async def test_without_a_status_message_the_delivery_waits_and_touches_nothing():
    chat = Recorder()
    with pytest.raises(RetryLater):
        await delivery.deliver(chat, chat, item("result", RESULT), job({"channel": "C1"}))
    assert chat.log == []


async def test_started_edits_the_status_with_the_lane_at_work():
    chat = Recorder()
    await delivery.deliver(
        chat, chat, item("started", {"batch": "b1"}), job({"channel": "C1", "status": "s"}, attempt=2)
    )
    [(what, line, done)] = chat.log
    assert (what, done) == ("status", False)
    assert line.startswith("[g] Sent to Google's Batch lane with pro at 1K (attempt 2)")


async def test_a_result_remembers_the_thread_posts_once_then_says_done():
    chat = Recorder()
    await delivery.deliver(chat, chat, item("result", RESULT), job({"channel": "C1", "status": "s"}))
    assert chat.log == [
        ("remember", "chat", "T1", "C1", "thread", 7),  # before the image shows: a reply may come at once
        ("post", 7, "image 7 of T1"),  # with its place in its thread
        ("attach", 3, {"posted": "m1"}),
        ("remember", "chat", "T1", "C1", "m1", 7),
        ("status", MARKS.done(RESULT), True),
    ]


async def test_an_image_deleted_before_posting_ends_the_delivery_with_a_word():
    # Deleted from the gallery while its delivery waited: told once, not retried, and no
    # thread is left pointing at it (a reply there would edit a deleted image).
    chat = Recorder(deleted=frozenset({7}))
    await delivery.deliver(chat, chat, item("result", RESULT), job({"channel": "C1", "status": "s"}))
    assert chat.log == [("status", MARKS.failed(delivery.DELETED_BEFORE_POSTING), False)]


async def test_a_retried_result_does_not_post_the_image_again():
    chat = Recorder()
    await delivery.deliver(chat, chat, item("result", RESULT), job({"channel": "C1", "status": "s", "posted": "m1"}))
    assert [entry[0] for entry in chat.log] == ["remember", "status"]


async def test_a_failure_is_told_in_the_users_words():
    chat = Recorder()
    await delivery.deliver(
        chat, chat, item("failed", {"error_class": BlockedError.kind}), job({"channel": "C1", "status": "s"})
    )
    assert chat.log == [("status", f"[f] {BlockedError.user_message}", False)]
