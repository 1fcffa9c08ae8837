"""The gallery's core calls, as every adapter uses them: who may delete an image, the chat
[Delete] of a job's result, and the lineage a chat message can quote."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.catalog import load_catalog
from bot.service import Caller, ImagineService
from bot.types import DeletedImage, RefusalReason, Refused
from tests.support.gallery import render
from tests.support.jobs import new_job


@pytest.fixture
def service(store, clock):
    return ImagineService(store, load_catalog(), clock=clock)


async def test_the_requester_or_a_moderator_deletes_nobody_else(store, service):
    image_id = await render(store, "a red fox", 134_000, user="U1")
    assert await service.may_delete_image(image_id, Caller("T1", "U2")) is False
    refused = await service.delete_image(image_id, Caller("T1", "U2"))
    assert isinstance(refused, Refused) and refused.reason is RefusalReason.NOT_MODERATOR
    other_team = await service.delete_image(image_id, Caller("T2", "U1", platform_admin=True))
    assert isinstance(other_team, Refused) and other_team.reason is RefusalReason.NOT_FOUND
    assert await store.get_image(image_id) is not None

    assert await service.may_delete_image(image_id, Caller("T1", "M1", platform_admin=True)) is True
    deleted = await service.delete_image(image_id, Caller("T1", "M1", platform_admin=True))
    assert isinstance(deleted, DeletedImage) and deleted.blob_deleted
    assert await store.get_image(image_id) is None


async def test_a_chat_delete_of_a_cache_hit_leaves_someone_else_s_image(store, service):
    image_id = await render(store, "a red fox", 134_000, user="U1", cache_key="fox")
    hit = await store.submit(replace(new_job(prompt="a red fox"), user="U2", cache_key="fox"), [], cache_ttl=3600)
    assert hit.cached
    refused = await service.delete_result(hit.job_id, Caller("T1", "U2"))
    assert isinstance(refused, Refused) and await store.get_image(image_id) is not None
    own_job = (await store.get_image(image_id)).job_id
    assert isinstance(await service.delete_result(own_job, Caller("T1", "U1")), DeletedImage)
    assert await store.get_image(image_id) is None
    assert isinstance(await service.delete_result(own_job, Caller("T1", "U1")), Refused)  # nothing left


async def test_the_lineage_of_an_image_words_itself_for_chat(store, service):
    root = await render(store, "a lighthouse", 134_000)
    edit = await render(store, "warmer light", 40_000, parent=root, color="orange")
    lineage = await service.lineage("T1", edit)
    assert lineage is not None
    assert lineage.summary() == "edit 1 of this thread · this image $0.04 · thread total $0.17"
    assert await service.lineage("T2", edit) is None
    await service.delete_image(edit, Caller("T1", "U1"))
    assert await service.lineage("T1", edit) is None
