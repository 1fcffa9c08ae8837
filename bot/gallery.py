"""The team gallery: its result images a page at a time, an image's lineage with the money
of its thread, and deleting an image (for its requester or a moderator) for real.

A thread is a root image (one no edit made) and every image edited from it, however deep;
an image edited twice has two children, so a thread is a tree. An image's running cost is
what its chain cost, root to it (each job's settled charges, as the ledger has them); the
thread total is what every image of the tree cost. Deleted images kept as tombstones for
their edits still count: the money was spent. All sums are exact micro-dollars; pages and
chat messages only format them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.access import Caller, is_moderator, off_allow_list
from bot.money import usd
from bot.store.ports import Store
from bot.types import DeletedImage, GalleryImage, RefusalReason, Refused
from policies.config import PolicyBook

PAGE_SIZE = 24
NOT_FOUND = "I can't find that image: it was deleted, or it is not one of your team's."
NOT_YOURS = "Only the person who asked for this image, or a moderator, can delete it."


@dataclass(frozen=True)
class GalleryPage:
    images: tuple[GalleryImage, ...]
    number: int  # 1 for the newest
    pages: int  # at least 1, even when there are no images
    total: int


@dataclass(frozen=True)
class LineageStep:
    """One image of a thread, in the tree's reading order (each image, then its edits)."""

    image: GalleryImage
    depth: int  # 0 for the root, 1 for its edits, ...
    on_path: bool  # the image asked about, or one of its ancestors
    current: bool  # the image asked about
    running_micros: int  # what its chain cost, root to it


@dataclass(frozen=True)
class Lineage:
    image: GalleryImage
    root: GalleryImage
    path: tuple[GalleryImage, ...]  # root first, the image last
    steps: tuple[LineageStep, ...]  # the whole thread, branches included
    running_micros: int  # the chain root..image
    thread_micros: int  # every image of the thread

    @property
    def edit_number(self) -> int:
        """0 for the root; n for the n-th edit along its chain."""
        return len(self.path) - 1

    def summary(self, *, cached: bool = False) -> str:
        """One line for chat: "edit 3 of this thread · this image $0.13 · thread total $0.54".
        `cached`: the request was answered with this (earlier) image, so it cost nothing."""
        where = "the original of this thread" if self.edit_number == 0 else f"edit {self.edit_number} of this thread"
        this = "$0.00 (answered from an earlier request)" if cached else usd(self.image.cost_micros)
        return f"{where} · this image {this} · thread total {usd(self.thread_micros)}"


def lineage_of(thread: Sequence[GalleryImage], image_id: int) -> Lineage | None:
    """The lineage of `image_id` within its thread's images (any order), or None when the
    image is not among them."""
    by_id = {image.id: image for image in thread}
    image = by_id.get(image_id)
    if image is None:
        return None
    path = [image]
    while path[0].parent_image_id in by_id:
        path.insert(0, by_id[path[0].parent_image_id])
    edits: dict[int | None, list[GalleryImage]] = {}
    for each in sorted(thread, key=lambda i: i.id):
        edits.setdefault(each.parent_image_id, []).append(each)
    on_path = {each.id for each in path}
    steps: list[LineageStep] = []

    def walk(node: GalleryImage, depth: int, above: int) -> None:
        running = above + node.cost_micros
        steps.append(LineageStep(node, depth, node.id in on_path, node.id == image_id, running))
        for child in edits.get(node.id, []):
            walk(child, depth + 1, running)

    walk(path[0], 0, 0)
    return Lineage(
        image=image,
        root=path[0],
        path=tuple(path),
        steps=tuple(steps),
        running_micros=sum(each.cost_micros for each in path),
        thread_micros=sum(step.image.cost_micros for step in steps),
    )


class GalleryDesk:
    """The gallery's reads and the delete rule, over the store's Gallery port."""

    def __init__(self, store: Store, policies: PolicyBook) -> None:
        self._store = store
        self._policies = policies

    async def page(self, team: str, number: int, platform: str) -> GalleryPage | Refused:
        if (refused := off_allow_list(self._policies, team, platform)) is not None:
            return refused
        total = await self._store.gallery_count(team)
        pages = max(1, -(-total // PAGE_SIZE))
        number = min(max(1, number), pages)
        images = await self._store.gallery_images(team, PAGE_SIZE, (number - 1) * PAGE_SIZE)
        return GalleryPage(tuple(images), number, pages, total)

    async def lineage(self, team: str, image_id: int, also: str | None = None) -> Lineage | None:
        """The lineage of one of the team's images not deleted; None otherwise. `also`: a
        linked team's own id, whose images before the link are the team's too (bot/orgs.py)."""
        found = await self._store.gallery_image(team, image_id, also)
        if found is None or found.deleted:
            return None
        return lineage_of(await self._store.image_thread(team, image_id, also), image_id)

    async def may_delete(self, image_id: int, caller: Caller) -> GalleryImage | Refused:
        """The image, when the caller may delete it: its requester, or a moderator (of a team
        on the allow-list)."""
        if (refused := off_allow_list(self._policies, caller.own_team, caller.platform)) is not None:
            return refused
        found = await self._store.gallery_image(caller.team, image_id, caller.own_team)
        if found is None or found.deleted:
            return Refused(RefusalReason.NOT_FOUND, NOT_FOUND)
        if found.user != caller.user and not is_moderator(self._policies, caller):
            return Refused(RefusalReason.NOT_MODERATOR, NOT_YOURS)
        return found

    async def delete(self, image_id: int, caller: Caller) -> DeletedImage | Refused:
        allowed = await self.may_delete(image_id, caller)
        if isinstance(allowed, Refused):
            return allowed
        deleted = None
        for key in caller.keys:  # the image is under one of them
            deleted = deleted or await self._store.delete_image(key, image_id)
        return deleted or Refused(RefusalReason.NOT_FOUND, NOT_FOUND)  # deleted meanwhile

    async def delete_result(self, job_id: int, caller: Caller) -> DeletedImage | Refused:
        """Delete a job's result image (a chat message's [Delete]). A prompt-cache hit's image
        is its first requester's: only they or a moderator may delete it."""
        job = await self._store.get_job(job_id)
        if job is None or job.team not in caller.keys or job.result_image_id is None:
            return Refused(RefusalReason.NOT_FOUND, NOT_FOUND)
        return await self.delete(job.result_image_id, caller)
