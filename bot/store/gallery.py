"""The gallery's rows: a team's result images with what each job was charged, an image's
thread (its root and every edit below it), and deleting an image for real.

Every read takes the team and returns nothing of another team's, as if it did not exist.
"""

from __future__ import annotations

from bot.store.tx import Operations, Row, Tx, reads, writes
from bot.types import DeletedImage, GalleryImage, GenerationSpec


class GalleryOperations(Operations):
    @reads
    async def gallery_images(self, tx: Tx, team: str, limit: int, offset: int) -> list[GalleryImage]:
        return [_gallery_image(r) for r in await tx.all("gallery_page", team=team, limit=limit, offset=offset)]

    @reads
    async def user_images(
        self, tx: Tx, team: str, user: str, limit: int, also: str | None = None
    ) -> list[GalleryImage]:
        rows = await tx.all("gallery_user_page", team=team, also=also or team, user=user, limit=limit)
        return [_gallery_image(r) for r in rows]

    @reads
    async def gallery_count(self, tx: Tx, team: str) -> int:
        return int(await tx.value("gallery_count", team=team) or 0)

    @reads
    async def gallery_image(self, tx: Tx, team: str, image_id: int, also: str | None = None) -> GalleryImage | None:
        row = await tx.one("gallery_image", id=image_id, team=team, also=also or team)
        return _gallery_image(row) if row else None

    @reads
    async def image_thread(self, tx: Tx, team: str, image_id: int, also: str | None = None) -> list[GalleryImage]:
        return [_gallery_image(r) for r in await tx.all("gallery_thread", id=image_id, team=team, also=also or team)]

    @reads
    async def chain_teams(self, tx: Tx, image_id: int) -> list[str]:
        return sorted(r["team"] for r in await tx.all("chain_teams", id=image_id))

    @writes
    async def delete_image(self, tx: Tx, team: str, image_id: int) -> DeletedImage | None:
        # The team's lock, as submit takes it: a submit that found this image in the cache
        # has committed its copy (unlinked below), or will look after this commit and miss.
        await tx.lock(f"imagine-team:{team}")
        target = await tx.one("image_to_delete", id=image_id, team=team)
        if target is None:
            return None
        threads = await tx.run("unlink_image_threads", id=image_id)
        cached = await tx.run("uncache_image", id=image_id)
        # The row always stays, without its bytes: its edits' lineage names it, its job's ledger
        # rows and savings still count it, and its id is never handed to another image (SQLite
        # reuses the highest id of a deleted row), which a pending delivery would then post.
        await tx.run("tombstone_image", id=image_id, now=self._clock())
        tombstone = bool(await tx.value("image_edits", id=image_id, team=team))
        blob_deleted = await tx.run("delete_unneeded_blob", sha256=target["sha256"]) == 1
        return DeletedImage(image_id, tombstone, blob_deleted, threads, cached)


def _gallery_image(row: Row) -> GalleryImage:
    spec = GenerationSpec.from_json(row["request"])
    return GalleryImage(
        id=row["id"],
        job_id=row["job_id"],
        parent_image_id=row["parent_image_id"],
        team=row["team"],
        channel=row["channel"],
        user=row["user"],
        platform=row["platform"],
        kind=row["kind"],
        prompt=spec.prompt,
        model=spec.model_alias,
        size=spec.size,
        aspect_ratio=spec.aspect_ratio,
        lane=spec.lane,
        mime=row["mime"],
        width=row["width"],
        height=row["height"],
        created_at=row["created_at"],
        cost_micros=int(row["cost_micros"]),
        deleted_at=row["deleted_at"],
        input_images=spec.input_images,
    )
