"""The Store contract for the gallery: a team's result images with their charges, an image's
thread, and deleting an image for real (bytes, chat threads, prompt cache) while the ledger
keeps every row."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bot.types import Lane
from tests.integration.store.test_store_images import stored_blobs
from tests.support.gallery import png, render
from tests.support.jobs import new_job


async def test_the_gallery_lists_the_team_s_results_newest_first_with_their_charges(store):
    first = await render(store, "a red fox", 134_000, color="red")
    # Inputs are not results: an attachment does not show in the gallery.
    await store.submit(new_job(prompt="with a photo"), [png("blue")])
    second = await render(store, "a koi pond", 67_000, user="U2", color="green", model="flash")
    await render(store, "another team's", 500_000, team="T2", color="black")

    assert await store.gallery_count("T1") == 2
    newest, oldest = await store.gallery_images("T1", 24, 0)
    assert (newest.id, newest.prompt, newest.model, newest.user, newest.cost_micros) == (
        second,
        "a koi pond",
        "flash",
        "U2",
        67_000,
    )
    assert (oldest.id, oldest.size, oldest.lane, oldest.kind, oldest.width, oldest.team) == (
        first,
        "1K",
        Lane.STANDARD,
        "imagine",
        8,
        "T1",
    )
    assert [i.id for i in await store.gallery_images("T1", 1, 1)] == [first]
    assert await store.gallery_images("T3", 24, 0) == []
    assert await store.gallery_image("T2", first) is None  # another team's reads as missing


async def test_a_thread_is_its_root_and_every_edit_below_it_branches_included(store):
    root = await render(store, "a lighthouse", 100_000, color="red")
    warmer = await render(store, "warmer light", 40_000, parent=root, color="orange")
    night = await render(store, "at night", 30_000, parent=warmer, color="navy")
    storm = await render(store, "add a storm", 20_000, parent=root, color="gray")
    elsewhere = await render(store, "another thread", 1_000, color="white")

    for member in (root, warmer, night, storm):
        thread = await store.image_thread("T1", member)
        assert [(i.id, i.parent_image_id, i.cost_micros) for i in thread] == [
            (root, None, 100_000),
            (warmer, root, 40_000),
            (night, warmer, 30_000),
            (storm, root, 20_000),
        ]
    assert [i.id for i in await store.image_thread("T1", elsewhere)] == [elsewhere]
    assert await store.image_thread("T2", night) == []
    assert (await store.gallery_image("T1", night)).kind == "edit"


async def test_delete_removes_the_bytes_the_thread_links_and_the_cache_but_keeps_the_ledger(store):
    image_id = await render(store, "a red fox", 134_000, color="red", cache_key="fox")
    other = await render(store, "a koi pond", 67_000, color="green")
    job_id = (await store.get_image(image_id)).job_id
    await store.remember_thread("slack", "T1", "C1", "1700.1", image_id)
    await store.remember_thread("slack", "T1", "C1", "1700.2", other)
    # A later identical request was answered from the cache: the same image, at $0.
    hit = await store.submit(replace(new_job(prompt="a red fox"), cache_key="fox"), [], cache_ttl=3600)
    assert hit.cached and (await store.get_job(hit.job_id)).result_image_id == image_id
    ledger_before = await store.ledger(team="T1")

    deleted = await store.delete_image("T1", image_id)

    assert deleted is not None
    assert (deleted.tombstone, deleted.blob_deleted, deleted.threads_unlinked, deleted.cache_entries) == (
        False,
        True,
        1,
        2,
    )
    assert await store.get_image(image_id) is None  # no bytes: nothing can serve or post it
    kept = await store.gallery_image("T1", image_id)  # the row stays, so its id is never reused
    assert kept is not None and kept.deleted and kept.cost_micros == 134_000
    assert [i.id for i in await store.gallery_images("T1", 24, 0)] == [other]
    assert png("red").sha256 not in [sha for sha, _ in await stored_blobs(store)]
    assert await store.thread_image("slack", "T1", "C1", "1700.1") is None
    assert await store.thread_image("slack", "T1", "C1", "1700.2") == other
    assert (await store.get_job(job_id)).result_image_id == image_id  # its money still counts
    # The same prompt makes a new image now: no cache hit, no stale answer either.
    again = await store.submit(replace(new_job(prompt="a red fox"), cache_key="fox"), [], cache_ttl=3600)
    assert not again.cached
    assert await store.stale_result("T1", "fox") is None
    assert await store.ledger(team="T1") == ledger_before  # money history stays
    assert await store.delete_image("T1", image_id) is None  # once
    # The next image gets a new id, never the deleted one's (SQLite would reuse the highest).
    assert await render(store, "a new image", 1_000, team="T2", color="blue") > image_id


async def test_an_image_with_edits_stays_as_a_tombstone_without_its_bytes(store):
    root = await render(store, "a lighthouse", 100_000, color="red")
    edit = await render(store, "warmer light", 40_000, parent=root, color="orange")

    deleted = await store.delete_image("T1", root)

    assert deleted is not None and deleted.tombstone and deleted.blob_deleted
    assert await store.get_image(root) is None  # no bytes to serve
    tombstone = await store.gallery_image("T1", root)
    assert tombstone is not None and tombstone.deleted and tombstone.cost_micros == 100_000
    assert [(i.id, i.deleted) for i in await store.image_thread("T1", edit)] == [(root, True), (edit, False)]
    assert [i.id for i in await store.gallery_images("T1", 24, 0)] == [edit]
    assert await store.gallery_count("T1") == 1
    assert (await store.get_image(edit)).parent_image_id == root
    assert png("red").sha256 not in [sha for sha, _ in await stored_blobs(store)]


async def test_an_edit_still_queued_keeps_its_parent_as_a_tombstone(store):
    root = await render(store, "a lighthouse", 100_000, color="red")
    pending = replace(new_job(prompt="add a moon"), kind="edit")
    await store.submit(replace(pending, spec=replace(pending.spec, parent_image_id=root)), [])

    deleted = await store.delete_image("T1", root)

    assert deleted is not None and deleted.tombstone
    assert await store.get_image(root) is None


async def test_bytes_another_image_holds_survive_until_the_last_one_goes(store):
    first = await render(store, "a red square", 10_000, color="red")
    second = await render(store, "the same red square", 10_000, color="red")
    # An upload of the same picture holds the bytes too.
    await store.submit(new_job(prompt="with the picture"), [png("red")])
    red = png("red").sha256

    assert (await store.delete_image("T1", first)).blob_deleted is False
    assert (await store.get_image(second)).data == png("red").data
    assert (await store.delete_image("T1", second)).blob_deleted is False  # the upload still needs them
    assert red in [sha for sha, _ in await stored_blobs(store)]


async def test_another_team_s_image_or_an_input_cannot_be_deleted(store):
    image_id = await render(store, "a red fox", 134_000, color="red")
    submitted = await store.submit(new_job(prompt="with a photo"), [png("blue")])
    [upload] = await store.job_inputs(submitted.job_id)

    assert await store.delete_image("T2", image_id) is None
    assert await store.delete_image("T1", upload.id) is None
    assert await store.delete_image("T1", 999_999) is None
    assert (await store.get_image(image_id)).data == png("red").data
    assert (await store.get_image(upload.id)).data == png("blue").data


async def test_of_deletes_at_once_from_many_processes_exactly_one_deletes(store_factory):
    stores = [await store_factory() for _ in range(4)]
    root = await render(stores[0], "a lighthouse", 100_000, color="red")
    await render(stores[0], "warmer light", 40_000, parent=root, color="orange")
    done = await asyncio.gather(*(stores[i % 4].delete_image("T1", root) for i in range(8)))
    assert sum(d is not None for d in done) == 1
    assert (await stores[1].gallery_image("T1", root)).deleted


async def test_a_second_key_reads_a_linked_team_s_images_from_before_the_link(store):
    """A thread begun by a team on its own and edited once it was linked (its organisation's
    key): read under both keys it is whole; under either one alone, only that key's images."""
    root = await render(store, "a lighthouse", 134_000, team="4455", user="U1")
    edit = await render(store, "at night", 40_000, parent=root, team="T0123", user="U1", color="navy")
    other = await render(store, "a barn", 10_000, team="T0999", user="U1", color="green")
    assert [i.id for i in await store.image_thread("T0123", edit, "4455")] == [root, edit]
    assert [i.id for i in await store.image_thread("T0123", edit)] == [edit]
    assert (await store.gallery_image("T0123", root, "4455")).id == root
    assert await store.gallery_image("T0123", root) is None
    assert await store.gallery_image("T0123", other, "4455") is None
    assert [i.id for i in await store.user_images("T0123", "U1", 10, "4455")] == [edit, root]
    assert [i.id for i in await store.user_images("4455", "U1", 10)] == [root]


async def test_an_images_chain_names_the_teams_that_made_it(store):
    root = await render(store, "a lighthouse", 134_000, team="4455")
    edit = await render(store, "at night", 40_000, parent=root, team="T0123", color="navy")
    again = await render(store, "with snow", 40_000, parent=edit, team="T0123", color="white")
    assert await store.chain_teams(again) == ["4455", "T0123"]
    assert await store.chain_teams(root) == ["4455"]
    assert await store.chain_teams(999) == []
