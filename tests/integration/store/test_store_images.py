"""The Store contract for image bytes: stored once per distinct content, whatever path stores them."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import replace

import psycopg
from psycopg import sql

from bot.money.admission import Charge
from bot.store.ports import final_delivery_key
from bot.store.postgres import PostgresStore
from bot.types import CheckedImage, NewDelivery
from tests.support.images import png_bytes
from tests.support.jobs import new_job


def checked(data: bytes) -> CheckedImage:
    return CheckedImage(data, "image/png", 8, 8, hashlib.sha256(data).hexdigest())


async def stored_blobs(store) -> list[tuple[str, int]]:
    """(sha256, size) of every distinct image content the store holds, read from its tables."""
    query = "SELECT sha256, length(data) FROM blobs ORDER BY sha256"
    if isinstance(store, PostgresStore):
        async with await psycopg.AsyncConnection.connect(store.url) as conn:
            await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(store._schema)))
            return [tuple(r) for r in await (await conn.execute(query)).fetchall()]
    with sqlite3.connect(store.path) as conn:
        return [tuple(r) for r in conn.execute(query).fetchall()]


async def finish(store, job, image: CheckedImage) -> int:
    return await store.complete(
        job.id,
        job.worker_id,
        job.attempt,
        image,
        {},
        NewDelivery(final_delivery_key(job.id), "result", {}),
        Charge(1000, None, "succeeded"),
    )


async def test_six_identical_requests_store_their_attachment_once(store):
    attachment = checked(png_bytes(8, 8, "blue"))
    ids = [(await store.submit(new_job(), [attachment])).job_id for _ in range(6)]
    for job_id in ids:
        [image] = await store.job_inputs(job_id)
        assert (image.data, image.sha256, image.job_id, image.role) == (
            attachment.data,
            attachment.sha256,
            job_id,
            "input",
        )
    assert await stored_blobs(store) == [(attachment.sha256, len(attachment.data))]


async def test_outputs_edits_and_cache_hits_share_the_bytes_they_repeat(store):
    attachment, answer = checked(png_bytes(8, 8, "blue")), checked(png_bytes(8, 8, "green"))
    cacheable = replace(new_job(), cache_key="k")
    first = await store.submit(cacheable, [attachment])
    image_id = await finish(store, await store.lease("w", 60), answer)
    hit = await store.submit(cacheable, [attachment], cache_ttl=3600)
    assert hit.cached and [i.data for i in await store.job_inputs(hit.job_id)] == [attachment.data]
    # An edit of the answer that comes back unchanged (and the same picture attached again).
    edit = replace(new_job(prompt="make it pop"), kind="edit")
    await store.submit(replace(edit, spec=replace(edit.spec, parent_image_id=image_id)), [attachment])
    edited = await finish(store, await store.lease("w", 60), answer)
    again = await store.get_image(edited)
    assert (again.data, again.parent_image_id, again.role) == (answer.data, image_id, "output")
    assert (await store.get_image(image_id)).job_id == first.job_id
    assert await stored_blobs(store) == sorted(
        [(attachment.sha256, len(attachment.data)), (answer.sha256, len(answer.data))]
    )


async def test_bytes_are_addressed_by_their_own_digest_not_the_callers(store):
    # A caller's wrong digest must not make two different pictures share bytes.
    one, two = png_bytes(8, 8, "red"), png_bytes(8, 8, "white")
    first = await store.submit(new_job(), [CheckedImage(one, "image/png", 8, 8, "0" * 64)])
    second = await store.submit(new_job(), [CheckedImage(two, "image/png", 8, 8, "0" * 64)])
    [a], [b] = await store.job_inputs(first.job_id), await store.job_inputs(second.job_id)
    assert (a.data, a.sha256) == (one, hashlib.sha256(one).hexdigest())
    assert (b.data, b.sha256) == (two, hashlib.sha256(two).hexdigest())
