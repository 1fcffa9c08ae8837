"""The Store contract for a chat thread's lineage: [Undo] moves a thread back to an earlier
image only while the thread still shows the image undone (a second press changes nothing),
and a user's own latest images for /imagine-history."""

from __future__ import annotations

from tests.support.gallery import render


async def test_a_thread_moves_back_only_from_the_image_it_shows(store):
    root = await render(store, "a lighthouse", 100_000)
    edit = await render(store, "at night", 40_000, parent=root, color="navy")
    await store.remember_thread("slack", "T1", "C1", "1700.1", edit)

    assert await store.swap_thread_image("slack", "T1", "C1", "1700.1", edit, root) is True
    assert await store.thread_image("slack", "T1", "C1", "1700.1") == root
    # Pressed again: the thread no longer shows the edit, so nothing moves.
    assert await store.swap_thread_image("slack", "T1", "C1", "1700.1", edit, root) is False
    assert await store.thread_image("slack", "T1", "C1", "1700.1") == root
    # Another team's, or another platform's, thread of the same name is not this one.
    assert await store.swap_thread_image("slack", "T2", "C1", "1700.1", root, edit) is False
    assert await store.swap_thread_image("discord", "T1", "C1", "1700.1", root, edit) is False
    assert await store.swap_thread_image("slack", "T1", "C1", "nowhere", root, edit) is False


async def test_a_user_s_latest_images_newest_first_only_theirs(store):
    mine = [await render(store, f"picture {n}", 1_000 * n, color="red") for n in range(1, 13)]
    await render(store, "someone else's", 5_000, user="U2")
    await render(store, "another team's", 5_000, team="T2")

    latest = await store.user_images("T1", "U1", 10)
    assert [i.id for i in latest] == mine[::-1][:10]
    assert (latest[0].prompt, latest[0].cost_micros) == ("picture 12", 12_000)
    assert await store.user_images("T1", "U3", 10) == []
