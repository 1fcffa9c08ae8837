"""How a job's updates reach its chat, once for every platform.

The outbox hands an adapter a delivery ("started", "result" or "failed") and
the job; the job's delivery context says where its status message is. The
steps are the same on Slack and Discord:

- no status message recorded yet: retry later (the adapter is still posting it);
- "started": the status says which lane and model are at work;
- "result": remember the thread first (a reply may come the moment the image
  shows), post the image once with its place in its thread ("edit 2 of this
  thread · this image $0.04 · thread total $0.17"; a retried delivery finds it
  recorded and does not post again), remember where it went, then the final status;
- anything else: the status says what went wrong, in the user's words.

A platform supplies only what differs: how a status is edited, how an image is
posted, and under which keys a reply finds the image (`Surface`).
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar, cast

from adapters.status import Marks
from bot.notify import RetryLater
from bot.providers.errors import user_message_for
from bot.service import ImagineService
from bot.types import Delivery, Job, StoredImage

DELETED_BEFORE_POSTING = "The image was deleted before it could be posted."

# A reply finds its image by (channel, key): the key is a thread or a message the platform names.
ReplyKey = tuple[str, str]
ClientT = TypeVar("ClientT")


class Surface(Protocol):
    """One platform's side of delivering a job."""

    platform: str
    status_key: str  # in the job's delivery context once its status message is out
    posted_key: str  # in the job's delivery context once its image is posted
    marks: Marks  # the status lines in the platform's emoji

    async def edit_status(self, job: Job, where: dict[str, Any], line: str, *, done: bool = False) -> None:
        """Show `line` in the job's status message; `done` when the image is out."""

    async def post_image(self, job: Job, where: dict[str, Any], result: dict[str, Any]) -> str:
        """Post the result's image (its caption ends with result["lineage"], when there is one);
        the id of what was posted."""

    def reply_keys(self, where: dict[str, Any], posted: str | None) -> list[ReplyKey]:
        """Where a reply edits the image: before posting (`posted` None) and after it."""


class Remembers(Protocol):
    """What delivery needs of the core: record context and reply threads."""

    async def attach_delivery(self, job_id: int, context: dict[str, Any]) -> bool: ...

    async def remember_thread(self, platform: str, team: str, channel: str, thread_id: str, image_id: int) -> None: ...

    async def posted_line(self, team: str, image_id: int, *, cached: bool = False) -> str | None: ...

    async def image(self, image_id: int) -> StoredImage | None: ...


async def deliver(surface: Surface, core: Remembers, delivery: Delivery, job: Job) -> None:
    where = job.delivery
    if surface.status_key not in where:
        raise RetryLater(f"job {job.id} has no status message yet")
    marks = surface.marks
    if delivery.kind == "started":
        line = marks.generating(
            job.spec.model_alias,
            job.spec.size,
            job.attempt,
            relaxed="batch" in delivery.payload,
            lane=job.spec.lane.value,
            relaned="relaned" in delivery.payload,
        )
        await surface.edit_status(job, where, line)
    elif delivery.kind == "result":
        result = delivery.payload
        if surface.posted_key not in where and await core.image(result["image_id"]) is None:
            # Deleted (from the gallery) before it could be posted: final, not retried, and
            # no thread may link to it.
            await surface.edit_status(job, where, marks.failed(DELETED_BEFORE_POSTING))
            return
        await _remember(surface, core, job, surface.reply_keys(where, None), result)
        if surface.posted_key not in where:  # a retried delivery must not post twice
            # Under the image: where it sits in its thread and what the thread cost so far.
            place = await core.posted_line(job.team, result["image_id"], cached=bool(result.get("cached")))
            posted = await surface.post_image(job, where, {**result, "lineage": place})
            await core.attach_delivery(job.id, {surface.posted_key: posted})
            await _remember(surface, core, job, surface.reply_keys(where, posted), result)
        await surface.edit_status(job, where, marks.done(result), done=True)
    else:
        await surface.edit_status(job, where, marks.failed(user_message_for(delivery.payload.get("error_class"))))


class Delivers(Generic[ClientT]):
    """What a platform's delivery (a Surface) holds: its API client and the core."""

    def __init__(self, client: ClientT, service: ImagineService) -> None:
        self._client, self._service = client, service

    async def deliver(self, item: Delivery, job: Job) -> None:
        await deliver(cast(Surface, self), self._service, item, job)


async def _remember(surface: Surface, core: Remembers, job: Job, keys: list[ReplyKey], result: dict[str, Any]) -> None:
    for channel, thread in keys:
        await core.remember_thread(surface.platform, job.team, channel, thread, result["image_id"])
