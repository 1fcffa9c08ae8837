"""A chat thread's lineage: the line under each posted image, [Undo] on an edit, and
/imagine-history (a thread's lineage, or a user's latest images).

A chat thread points at its latest image (the store's threads table): the next reply there
edits it. [Undo] on an edit points the thread back at the edit's parent, for nothing (no job
runs); the undone image stays in the gallery and in the thread's money, which was spent. Only
the image a thread shows can be undone, and the store moves the pointer only while it still
shows it, so a double click undoes once and the second press is told so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.access import Caller, acts_for, off_allow_list
from bot.gallery import GalleryDesk, Lineage
from bot.store.ports import Store
from bot.types import GalleryImage, RefusalReason, Refused
from policies.config import PolicyBook

RECENT_IMAGES = 10
NOT_FOUND = "I can't find that image any more: it was deleted, or it is not one of your team's."
NOT_YOURS = "Only the person who asked for this edit, or a moderator, can undo it."
FIRST_IMAGE = "This is the first image of the thread: there is nothing before it to go back to."
PARENT_GONE = "The image before this one was deleted, so there is nothing to go back to."
NOT_A_THREAD = "Replies here don't edit this image, so there is nothing to undo."
ALREADY_UNDONE = "Already undone: the thread's latest image is the one before this edit."
NOT_LATEST = "Only the thread's latest image can be undone, and this one is not the latest any more."

# Where a chat thread is, as remember_thread keys it: (channel, thread id).
ThreadKey = tuple[str, str]


@dataclass(frozen=True)
class Undone:
    image: GalleryImage  # the edit undone
    now_latest: Lineage  # the image the thread shows again, with its thread's money


class ThreadLineage:
    def __init__(self, store: Store, policies: PolicyBook, gallery: GalleryDesk) -> None:
        self._store, self._policies, self._gallery = store, policies, gallery

    async def posted_line(self, team: str, image_id: int, *, cached: bool = False) -> str | None:
        """The line under a posted image ("edit 3 of this thread · ..."); None when the
        image is gone."""
        # An edit across a link (of what its team made before joining an organisation) was
        # admitted as the team's own: its chain's other key counts with the thread.
        teams = await self._store.chain_teams(image_id)
        also = next((key for key in teams if key != team), None) if team in teams else None
        lineage = await self._gallery.lineage(team, image_id, also)
        return lineage.summary(cached=cached) if lineage else None

    async def undo(
        self, job_id: int, caller: Caller, platform: str, threads_of: Callable[[dict[str, Any]], Sequence[ThreadKey]]
    ) -> Undone | Refused:
        """Point the thread(s) a job's image went to (`threads_of` its delivery context) back at
        the image it edited."""
        job = await self._store.get_job(job_id)
        if job is None or job.team not in caller.keys or job.result_image_id is None:
            return Refused(RefusalReason.NOT_FOUND, NOT_FOUND)
        if not acts_for(self._policies, caller, job.team, job.user):
            return Refused(RefusalReason.NOT_MODERATOR, NOT_YOURS)
        image = await self._store.gallery_image(job.team, job.result_image_id)
        also = caller.own_team if job.team == caller.team else caller.team  # a thread across the link
        if image is None or image.deleted:
            return Refused(RefusalReason.NOT_FOUND, NOT_FOUND)
        if image.parent_image_id is None:
            return Refused(RefusalReason.INVALID_REQUEST, FIRST_IMAGE)
        parent = await self._gallery.lineage(job.team, image.parent_image_id, also)
        if parent is None:
            return Refused(RefusalReason.NOT_FOUND, PARENT_GONE)
        threads = threads_of(job.delivery)
        if not threads:
            return Refused(RefusalReason.INVALID_REQUEST, NOT_A_THREAD)
        moved = False
        for channel, thread in threads:
            for key in caller.keys:  # a thread begun before a link is under the team's own id
                moved |= await self._store.swap_thread_image(platform, key, channel, thread, image.id, parent.image.id)
        if moved:
            return Undone(image, parent)
        shown = await thread_image(self._store, platform, caller.keys, threads[0])
        if shown is None:
            return Refused(RefusalReason.NOT_FOUND, NOT_FOUND)
        if shown == parent.image.id:
            return Refused(RefusalReason.INVALID_REQUEST, ALREADY_UNDONE)
        return Refused(RefusalReason.INVALID_REQUEST, NOT_LATEST)

    async def thread_history(self, keys: tuple[str, ...], platform: str, thread: ThreadKey) -> Lineage | None | Refused:
        """The lineage of the image a chat thread shows; None when it is not one of ours.
        `keys`: the team's (OrgDirectory.keys), its organisation's first, its own last."""
        if (refused := off_allow_list(self._policies, keys[-1], platform)) is not None:
            return refused
        shown = await thread_image(self._store, platform, keys, thread)
        return None if shown is None else await self._gallery.lineage(keys[0], shown, keys[-1])

    async def recent(self, keys: tuple[str, ...], user: str, platform: str) -> list[GalleryImage] | Refused:
        """The user's latest images, newest first (`keys` as for thread_history)."""
        if (refused := off_allow_list(self._policies, keys[-1], platform)) is not None:
            return refused
        return await self._store.user_images(keys[0], user, RECENT_IMAGES, keys[-1])


async def thread_image(store: Store, platform: str, keys: Sequence[str], thread: ThreadKey) -> int | None:
    """The image a chat thread shows. A thread is kept under the key of the time it was last
    posted to: a thread begun before its team was linked may be under the team's own id
    (`keys`, its organisation's first: the newer row wins)."""
    for key in keys:
        if (shown := await store.thread_image(platform, key, *thread)) is not None:
            return shown
    return None
