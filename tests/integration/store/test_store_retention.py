"""The Store contract for retention: old rows of each kind are pruned in small batches, recent
ones kept, the ledger never touched, bytes another image still holds kept; two pruners at once
prune each row once. Time moves on the injected clock, never by sleeping."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bot.money.admission import Charge
from bot.store.ports import final_delivery_key
from bot.store.postgres import PostgresStore
from bot.types import NewDelivery
from tests.integration.store.test_store_images import stored_blobs
from tests.support.gallery import png, render
from tests.support.jobs import new_job

DAY = 86400.0


def days_ago(clock, days: float) -> float:
    return clock() - days * DAY


async def prune_all(store, kind: str, before: float, limit: int = 500) -> int:
    """Prune `kind` batch after batch, as the pruner does, until a batch comes back short."""
    total = 0
    while True:
        done = await store.prune(kind, before, limit)
        total += done
        if done < limit:
            return total


async def finished_with_inputs(store, prompt: str, *colors: str) -> int:
    """A job submitted with input pictures, then finished with an image of its own; its id."""
    submitted = await store.submit(new_job(prompt=prompt), [png(c) for c in colors])
    leased = await store.lease("w", 60, only_job_id=submitted.job_id)
    await store.complete(
        leased.id,
        leased.worker_id,
        leased.attempt,
        png("white"),
        {},
        NewDelivery(final_delivery_key(leased.id), "result", {}),
        Charge(1000, None, "succeeded"),
    )
    return submitted.job_id


async def test_old_result_images_lose_their_bytes_threads_and_cache_and_recent_ones_stay(store, clock):
    old = await render(store, "a red fox", 134_000, color="red", cache_key="fox")
    await store.remember_thread("slack", "T1", "C1", "1700.1", old)
    clock.advance(91 * DAY)
    recent = await render(store, "a koi pond", 67_000, color="green", cache_key="koi")
    await store.remember_thread("slack", "T1", "C1", "1700.2", recent)
    ledger_before = await store.ledger()

    assert await prune_all(store, "images", days_ago(clock, 90)) == 1

    assert await store.get_image(old) is None  # no bytes to serve or post
    assert (await store.gallery_image("T1", old)).deleted  # a tombstone: its money still counts
    assert await store.thread_image("slack", "T1", "C1", "1700.1") is None
    assert not (await store.submit(replace(new_job(prompt="a red fox"), cache_key="fox"), [], cache_ttl=1e9)).cached
    assert png("red").sha256 not in [sha for sha, _ in await stored_blobs(store)]
    assert (await store.get_image(recent)).data == png("green").data
    assert await store.thread_image("slack", "T1", "C1", "1700.2") == recent
    assert await store.ledger() == ledger_before  # money history is never deleted
    assert await prune_all(store, "images", days_ago(clock, 90)) == 0  # once


async def test_bytes_a_recent_image_shares_are_kept_when_an_old_image_goes(store, clock):
    old = await render(store, "a red square", 10_000, color="red")
    clock.advance(91 * DAY)
    recent = await render(store, "the same red square", 10_000, color="red")

    assert await prune_all(store, "images", days_ago(clock, 90)) == 1

    assert await store.get_image(old) is None
    assert (await store.get_image(recent)).data == png("red").data
    assert png("red").sha256 in [sha for sha, _ in await stored_blobs(store)]


async def test_an_old_image_a_queued_edit_still_needs_is_kept(store, clock):
    root = await render(store, "a lighthouse", 100_000, color="red")
    clock.advance(91 * DAY)
    pending = replace(new_job(prompt="add a moon"), kind="edit")
    await store.submit(replace(pending, spec=replace(pending.spec, parent_image_id=root)), [])

    assert await prune_all(store, "images", days_ago(clock, 90)) == 0
    assert (await store.get_image(root)).data == png("red").data


async def test_inputs_of_old_finished_jobs_are_pruned_not_those_of_recent_or_waiting_jobs(store, clock):
    old_job = await finished_with_inputs(store, "with a photo", "blue", "navy")
    waiting = (await store.submit(new_job(prompt="still queued"), [png("gray")])).job_id
    clock.advance(31 * DAY)
    recent_job = await finished_with_inputs(store, "with the same photo", "blue")

    assert await prune_all(store, "inputs", days_ago(clock, 30), limit=1) == 2

    assert await store.job_inputs(old_job) == []
    assert [i.data for i in await store.job_inputs(recent_job)] == [png("blue").data]
    assert [i.data for i in await store.job_inputs(waiting)] == [png("gray").data]
    blobs = [sha for sha, _ in await stored_blobs(store)]
    assert png("blue").sha256 in blobs and png("navy").sha256 not in blobs
    assert (await store.get_job(old_job)).result_image_id is not None  # its result is the images rule's


async def test_old_finished_jobs_go_only_when_no_ledger_row_or_image_needs_them(store, clock):
    charged = await render(store, "a red fox", 134_000, color="red", cache_key="fox")
    charged_job = (await store.get_image(charged)).job_id
    # A prompt-cache hit: no hold, no ledger row, no image of its own (it points at the first's).
    hit = await store.submit(replace(new_job(prompt="a red fox"), cache_key="fox"), [png("blue")], cache_ttl=3600)
    assert hit.cached
    clock.advance(400 * DAY)
    recent_hit = await store.submit(replace(new_job(prompt="a red fox"), cache_key="fox"), [], cache_ttl=1e9)
    ledger_before = await store.ledger()
    before = days_ago(clock, 365)

    await prune_all(store, "inputs", before)
    await prune_all(store, "outbox", before)
    assert await prune_all(store, "jobs", before) == 1

    assert await store.get_job(hit.job_id) is None
    assert (await store.get_job(charged_job)).result_image_id == charged  # the ledger names it
    assert await store.get_job(recent_hit.job_id) is not None
    assert await store.ledger() == ledger_before


async def test_delivered_outbox_rows_go_after_their_days_and_pending_ones_stay(store, clock):
    await store.raise_alert("alert:old-delivered", ["slack"], "old")
    await store.raise_alert("alert:old-pending", ["slack"], "waiting")
    [delivered] = await store.claim_deliveries(["slack"], 1, 60)
    await store.mark_delivered(delivered.id)
    clock.advance(31 * DAY)
    await store.raise_alert("alert:recent", ["slack"], "recent")
    [recent] = await store.claim_deliveries(["slack"], 1, 1)  # the old pending one, claimed again later
    clock.advance(120)

    assert await prune_all(store, "outbox", days_ago(clock, 30)) == 1
    assert await store.pending_deliveries() == 2  # the old pending row and the recent one
    assert recent.key == "alert:old-pending:slack"


async def test_dedupe_rows_go_after_their_days(store, clock):
    await store.save_confirmation("tok-old", "T1", "U1", {"prompt": "x"}, ttl_seconds=600)
    await store.use_sign_in_link("link-old", "T1", "U1", clock() + 600)
    assert await store.take_rate_slot("route:gemini", 10, 60) == 0
    keyed = (await store.submit(new_job(key="slack:evt-1"), [])).job_id
    await store.cancel(keyed)
    clock.advance(8 * DAY)
    await store.save_confirmation("tok-new", "T1", "U1", {"prompt": "y"}, ttl_seconds=600)
    before = days_ago(clock, 7)

    # save_confirmation already drops expired ones itself; the others are the pruner's.
    assert await prune_all(store, "sign_in_links", before) == 1
    assert await prune_all(store, "rate_slots", before) == 1
    assert await prune_all(store, "idempotency_keys", before) == 1
    assert await prune_all(store, "confirmations", before) == 0

    assert await store.job_for_key("slack:evt-1", None) is None
    assert await store.get_job(keyed) is not None  # the key goes, the job stays
    assert await store.use_sign_in_link("link-new", "T1", "U1", clock() + 600) is True
    assert await prune_all(store, "sign_in_links", before) == 0  # a claim still in force stays
    assert await store.use_sign_in_link("link-new", "T1", "U1", clock() + 600) is False
    assert await store.take_confirmation("tok-new", "T1", "U1") == {"prompt": "y"}


async def test_refused_prompts_lose_their_text_after_their_days_but_keep_their_row(store, clock):
    await store.record_moderation("T1", "C1", "U1", "banned_term", "something gory")
    clock.advance(31 * DAY)
    await store.record_moderation("T1", "C1", "U2", "banned_term", "something else")

    assert await prune_all(store, "moderation_text", days_ago(clock, 30)) == 1

    rows = await store.moderation_log("T1")
    assert [(r["user"], r["reason"], r["prompt"]) for r in rows] == [
        ("U1", "banned_term", None),
        ("U2", "banned_term", "something else"),
    ]


async def test_two_pruners_at_once_prune_each_row_once(store_factory, clock):
    first, second = await store_factory(), await store_factory()
    for n in range(12):
        # Images two by two share their bytes: whichever pruner takes the second one's
        # bytes must see the first one gone, however the two interleave.
        await render(first, f"image {n}", 1_000, color=f"#{n // 2:02x}0000")
        await first.record_moderation("T1", "C1", "U1", "banned_term", f"prompt {n}")
        await first.raise_alert(f"alert:{n}", ["slack"], "text")
    for delivery in await first.claim_deliveries(["slack"], 12, 60):
        await first.mark_delivered(delivery.id)
    clock.advance(91 * DAY)
    before = days_ago(clock, 90)

    for kind, rows, limit in (("images", 12, 1), ("images", 0, 1), ("moderation_text", 12, 5), ("outbox", 12, 5)):
        done = await asyncio.gather(
            prune_all(first, kind, before, limit=limit), prune_all(second, kind, before, limit=limit)
        )
        assert sum(done) == rows, kind
    assert await stored_blobs(first) == []


async def test_storage_figures_show_the_database_and_blob_bytes(store):
    await render(store, "a red fox", 1_000, color="red")
    await store.submit(new_job(prompt="with a photo"), [png("blue", 16, 16)])

    sizes = await store.storage_sizes()

    blobs = await stored_blobs(store)
    assert sizes.blob_bytes == sum(size for _, size in blobs) and sizes.blobs == 2
    assert sizes.database_bytes >= sizes.blob_bytes
    assert sizes.detail  # how the database measured itself: its pages, or its name
    if isinstance(store, PostgresStore):  # and its biggest tables, there
        assert 0 < len(sizes.tables) <= 5 and "jobs" in sizes.tables and min(sizes.tables.values()) > 0
    else:
        assert "pages of" in sizes.detail


async def test_deletes_and_a_pruner_at_once_take_each_image_once(store_factory, clock):
    first, second, third = await store_factory(), await store_factory(), await store_factory()
    ids = []
    for n in range(8):
        image_id = await render(first, f"image {n}", 1_000, color=f"#{n:02x}4040", cache_key=f"key {n}")
        await first.remember_thread("slack", "T1", "C1", f"17.{n}", image_id)
        ids.append(image_id)
    clock.advance(91 * DAY)

    pruned, *deleted = await asyncio.gather(
        prune_all(second, "images", days_ago(clock, 90), limit=1),
        *(third.delete_image("T1", image_id) for image_id in reversed(ids)),
    )

    assert pruned + sum(d is not None for d in deleted) == 8
    assert all([await first.get_image(i) is None for i in ids])
    assert await stored_blobs(first) == []
