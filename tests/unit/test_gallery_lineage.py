"""An image's lineage, computed from its thread's rows: the chain from the root, branches in
reading order, and the money (running cost of the chain, total of the thread) in exact micros."""

from __future__ import annotations

from bot.gallery import lineage_of
from bot.types import GalleryImage, Lane


def image(id: int, parent: int | None, cost: int, deleted: bool = False) -> GalleryImage:
    return GalleryImage(
        id=id,
        job_id=id,
        parent_image_id=parent,
        team="T1",
        channel="C1",
        user="U1",
        platform="slack",
        kind="edit" if parent else "imagine",
        prompt=f"prompt {id}",
        model="pro",
        size="1K",
        aspect_ratio="1:1",
        lane=Lane.STANDARD,
        mime="image/png",
        width=8,
        height=8,
        created_at=0.0,
        cost_micros=cost,
        deleted_at=1.0 if deleted else None,
    )


# 1 -> 2 -> 4, and 1 -> 3 (an image edited twice has two children); 1 was deleted.
THREAD = [image(4, 2, 30_000), image(3, 1, 20_000), image(1, None, 134_000, deleted=True), image(2, 1, 40_000)]


def test_the_chain_runs_from_the_root_and_the_tree_reads_each_image_then_its_edits():
    lineage = lineage_of(THREAD, 4)
    assert lineage is not None
    assert [i.id for i in lineage.path] == [1, 2, 4] and lineage.root.id == 1 and lineage.edit_number == 2
    assert [(s.image.id, s.depth, s.on_path, s.current) for s in lineage.steps] == [
        (1, 0, True, False),
        (2, 1, True, False),
        (4, 2, True, True),
        (3, 1, False, False),
    ]
    assert [s.running_micros for s in lineage.steps] == [134_000, 174_000, 204_000, 154_000]


def test_the_money_counts_deleted_images_exactly():
    lineage = lineage_of(THREAD, 4)
    assert lineage is not None
    assert (lineage.running_micros, lineage.thread_micros) == (204_000, 224_000)
    assert lineage.summary() == "edit 2 of this thread · this image $0.03 · thread total $0.22"
    root = lineage_of(THREAD, 1)
    assert root is not None and root.edit_number == 0 and root.running_micros == 134_000
    assert root.summary().startswith("the original of this thread · this image $0.13")


def test_an_image_outside_the_thread_has_no_lineage():
    assert lineage_of(THREAD, 99) is None
    assert lineage_of([], 1) is None
