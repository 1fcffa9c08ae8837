"""A chat thread's lineage through the core: the line under a posted image, [Undo] (who may,
twice, past the first image) and the history a thread or a user gets."""

from __future__ import annotations

import pytest

from bot import thread_lineage
from bot.catalog import load_catalog
from bot.service import Caller, ImagineService
from bot.thread_lineage import Undone
from bot.types import RefusalReason, Refused
from tests.support.gallery import render

THREAD = ("C1", "1700.1")


def in_thread(where):
    return [THREAD]


@pytest.fixture
def service(store, clock):
    return ImagineService(store, load_catalog(), clock=clock)


async def chain(store):
    root = await render(store, "a lighthouse", 134_000)
    edit = await render(store, "at night", 40_000, parent=root, color="navy")
    await store.remember_thread("slack", "T1", *THREAD, edit)
    return root, edit, (await store.get_image(edit)).job_id


async def test_the_posted_line_counts_the_thread_and_a_cache_hit_is_free(store, service):
    root, edit, _ = await chain(store)
    assert await service.posted_line("T1", edit) == "edit 1 of this thread · this image $0.04 · thread total $0.17"
    cached = await service.posted_line("T1", root, cached=True)
    assert cached is not None and cached.startswith("the original of this thread · this image $0.00")
    assert await service.posted_line("T2", edit) is None


async def test_undo_points_the_thread_back_once_for_the_requester_or_a_moderator(store, service):
    root, edit, job = await chain(store)
    refused = await service.undo(job, Caller("T1", "U2"), "slack", in_thread)
    assert isinstance(refused, Refused) and refused.detail == thread_lineage.NOT_YOURS
    assert await store.thread_image("slack", "T1", *THREAD) == edit

    undone = await service.undo(job, Caller("T1", "U1"), "slack", in_thread)
    assert isinstance(undone, Undone) and (undone.image.id, undone.now_latest.image.id) == (edit, root)
    assert undone.now_latest.thread_micros == 174_000  # the undone edit's money was spent
    assert await store.thread_image("slack", "T1", *THREAD) == root
    again = await service.undo(job, Caller("T1", "M1", platform_admin=True), "slack", in_thread)
    assert isinstance(again, Refused) and again.detail == thread_lineage.ALREADY_UNDONE
    assert await store.thread_image("slack", "T1", *THREAD) == root


async def test_undo_past_the_first_image_or_from_an_older_image_changes_nothing(store, service):
    root, edit, job = await chain(store)
    root_job = (await store.get_image(root)).job_id
    first = await service.undo(root_job, Caller("T1", "U1"), "slack", in_thread)
    assert isinstance(first, Refused) and first.detail == thread_lineage.FIRST_IMAGE
    newer = await render(store, "add stars", 10_000, parent=edit, color="white")
    await store.remember_thread("slack", "T1", *THREAD, newer)
    older = await service.undo(job, Caller("T1", "U1"), "slack", in_thread)
    assert isinstance(older, Refused) and older.detail == thread_lineage.NOT_LATEST
    assert await store.thread_image("slack", "T1", *THREAD) == newer
    other_team = await service.undo(job, Caller("T2", "U1"), "slack", in_thread)
    assert isinstance(other_team, Refused) and other_team.reason is RefusalReason.NOT_FOUND


async def test_history_of_a_thread_and_of_a_user(store, service):
    root, edit, _ = await chain(store)
    lineage = await service.thread_history("T1", "slack", THREAD)
    assert lineage is not None and not isinstance(lineage, Refused)
    assert [s.image.id for s in lineage.steps] == [root, edit] and lineage.image.id == edit
    assert await service.thread_history("T1", "slack", ("C1", "elsewhere")) is None
    recent = await service.recent_images("T1", "U1", "slack")
    assert not isinstance(recent, Refused) and [i.id for i in recent] == [edit, root]


async def test_a_linked_server_reads_and_undoes_its_threads_under_the_organisation(store, service):
    """A Discord server linked to Slack team T1 keeps its threads and images under T1's key:
    history and Undo from that server must look there, not under the server's own id."""
    await service.link_teams("T1", "4455")
    root, edit, job = await chain(store)
    await store.remember_thread("discord", "T1", *THREAD, edit)
    lineage = await service.thread_history("4455", "discord", THREAD)
    assert lineage is not None and not isinstance(lineage, Refused) and lineage.image.id == edit
    recent = await service.recent_images("4455", "U1", "discord")
    assert not isinstance(recent, Refused) and [i.id for i in recent] == [edit, root]
    undone = await service.undo(job, Caller("4455", "U1", platform="discord"), "discord", in_thread)
    assert isinstance(undone, Undone) and undone.now_latest.image.id == root
