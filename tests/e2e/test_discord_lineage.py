"""Discord end to end: every posted image says where it sits in its thread and what the thread
cost; [Undo] under an edit makes the image before it the thread's latest again (the next
message edits from there); /imagine-history lists a thread's lineage, or the user's images."""

from __future__ import annotations

from tests.e2e import test_discord
from tests.e2e.slack.test_slack_lineage import about, place
from tests.e2e.test_discord import MOD, USER

# The Discord world of test_discord.py.
world, prepare, more_env = test_discord.world, test_discord.prepare, test_discord.more_env
OTHER = 333


async def test_lineage_lines_undo_and_history_in_a_thread(world):
    discord, gemini = world.discord, world.gemini
    discord.add_member(OTHER)
    await discord.slash("imagine", {"prompt": "a lighthouse"}, user_id=USER)
    await discord.wait_for(lambda: world.thread_images())
    [thread] = discord.threads.values()
    [first] = world.thread_images()
    where, first_cost, total = place(first.content)
    assert where == "the original" and total == first_cost > 0
    assert "imagine:undo:1" not in [c["custom_id"] for row in first.components for c in row["components"]]

    await discord.user_message("make it night", user_id=OTHER, channel_id=thread.id)
    await discord.wait_for(lambda: len(world.thread_images()) == 2)
    edit = world.thread_images()[1]
    where, edit_cost, total = place(edit.content)
    assert where == "edit 1" and about(total, first_cost, edit_cost)
    assert [c["custom_id"] for row in edit.components for c in row["components"]] == [
        f"imagine:{a}:2" for a in ("reroll", "4k", "undo", "delete")
    ]

    # Neither the edit's requester nor a moderator: refused, privately.
    await discord.click("imagine:undo:2", edit, user_id=USER)
    await discord.wait_for(lambda: any("Only the person who asked for this edit" in t for t in world.ephemeral_texts()))
    await discord.click("imagine:undo:2", edit, user_id=OTHER)
    said = lambda: [m for m in discord.posted(thread.id) if "undid edit 1" in m.content and not m.ephemeral]  # noqa: E731
    await discord.wait_for(said)
    assert f"<@{OTHER}>" in said()[0].content and "the original again" in said()[0].content
    # Pressed again (by a moderator): nothing more to undo, and it says so.
    await discord.click("imagine:undo:2", edit, user_id=MOD)
    await discord.wait_for(lambda: any("Already undone" in t for t in world.ephemeral_texts()))

    # The next message in the thread edits the image before the undone edit.
    await discord.user_message("add snow", user_id=OTHER, channel_id=thread.id)
    await discord.wait_for(lambda: len(world.thread_images()) == 3)
    assert gemini.requests[2].prompt == "add snow"
    assert gemini.requests[2].input_images == [discord.attachment_bytes(first.attachments[0])]
    where, snow_cost, total = place(world.thread_images()[2].content)
    assert where == "edit 1" and about(total, first_cost, edit_cost, snow_cost)  # the undone edit was paid for
    assert len(gemini.requests) == 3  # Undo itself made no call

    # /imagine-history in the thread: its lineage; in the channel: the user's own images.
    await discord.slash("imagine-history", user_id=USER, channel_id=thread.id)
    await discord.wait_for(lambda: any("This thread: 3 images" in t for t in world.ephemeral_texts()))
    history = next(t for t in world.ephemeral_texts() if "This thread" in t).splitlines()
    assert history[1].startswith('• original: "a lighthouse" · $')
    assert history[2].startswith('  • edit 1: "make it night" · $')
    assert history[3].startswith('  • edit 1: "add snow" · $') and "latest" in history[3]
    await discord.slash("imagine-history", user_id=OTHER)
    await discord.wait_for(lambda: any("Your last 2 images" in t for t in world.ephemeral_texts()))
    mine = next(t for t in world.ephemeral_texts() if "Your last 2 images" in t)
    assert '"add snow"' in mine and '"make it night"' in mine and "a lighthouse" not in mine
