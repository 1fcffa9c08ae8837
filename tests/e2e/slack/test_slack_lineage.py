"""Slack end to end: every posted image says where it sits in its thread and what the thread
cost; [Undo] under an edit makes the image before it the thread's latest again (the next
reply edits from there); [History] and /imagine-history list what was made and what it cost."""

from __future__ import annotations

import re
from decimal import Decimal

THREAD_LINE = re.compile(r"(the original|edit (\d+)) of this thread · this image \$([\d.]+) · thread total \$([\d.]+)")


def place(comment: str | None) -> tuple[str, Decimal, Decimal]:
    """(where, this image's cost, the thread's total) from an image's caption."""
    found = THREAD_LINE.search(comment or "")
    assert found, comment
    return found[1], Decimal(found[3]), Decimal(found[4])


def about(total: Decimal, *parts: Decimal) -> bool:
    """The exact total of amounts each shown rounded to the cent."""
    return abs(total - sum(parts)) <= Decimal("0.005") * len(parts)


def reply(thread_ts: str, text: str, ts: str, user: str = "U2") -> dict:
    return {
        "type": "message",
        "channel": "C1",
        "user": user,
        "text": text,
        "ts": ts,
        "thread_ts": thread_ts,
        "channel_type": "channel",
    }


async def test_lineage_lines_undo_and_history_in_a_thread(world):
    slack, gemini = world.slack, world.gemini
    await world.command("/imagine", "a lighthouse", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 1 and "Done" in world.statuses()[0].text)
    parent = world.statuses()[0]
    where, first_cost, total = place(slack.uploads[0].initial_comment)
    assert where == "the original" and first_cost > 0 and total == first_cost
    assert "imagine_undo" not in [e["action_id"] for e in parent.blocks[-1]["elements"]]  # nothing before it

    await world.event(reply(parent.ts, "make it night", "1800000000.000200"), "Ev-night")
    await slack.wait_for(lambda: len(slack.uploads) == 2 and "Done" in world.statuses()[-1].text)
    where, edit_cost, total = place(slack.uploads[1].initial_comment)
    assert where == "edit 1" and about(total, first_cost, edit_cost)
    edit_status = world.statuses()[-1]
    buttons = {e["action_id"]: e["value"] for e in edit_status.blocks[-1]["elements"]}
    assert {"imagine_undo", "imagine_history"} <= buttons.keys()

    # Someone else (neither the edit's requester nor an admin) is refused, privately.
    await world.click("imagine_undo", buttons["imagine_undo"], "U1", edit_status.ts, response_url=slack.response_url())
    await slack.wait_for(lambda: any("Only the person who asked for this edit" in t for t in world.answers()))
    await world.click("imagine_undo", buttons["imagine_undo"], "U2", edit_status.ts, response_url=slack.response_url())
    said = lambda: [m for m in slack.posted("C1") if m.thread_ts == parent.ts and "undid edit 1" in m.text]  # noqa: E731
    await slack.wait_for(said)
    [told] = said()
    assert "<@U2>" in told.text and "the original again" in told.text and told.ephemeral_user is None
    # A second press undoes nothing more, and says so.
    await world.click("imagine_undo", buttons["imagine_undo"], "U2", edit_status.ts, response_url=slack.response_url())
    await slack.wait_for(lambda: any("Already undone" in t for t in world.answers()))

    # The next reply edits the image before the undone edit.
    await world.event(reply(parent.ts, "add snow", "1800000000.000300"), "Ev-snow")
    await slack.wait_for(lambda: len(slack.uploads) == 3)
    assert gemini.requests[2].prompt == "add snow"
    assert gemini.requests[2].input_images == [slack.uploads[0].data]
    where, snow_cost, total = place(slack.uploads[2].initial_comment)
    assert where == "edit 1" and about(total, first_cost, edit_cost, snow_cost)  # the undone edit was paid for
    await world.settled()
    assert len(gemini.requests) == 3  # Undo itself made no call

    # [History] lists the thread: each image with its prompt and cost, the latest marked.
    await world.click(
        "imagine_history", buttons["imagine_history"], "U1", edit_status.ts, response_url=slack.response_url()
    )
    await slack.wait_for(lambda: any("This thread: 3 images" in t for t in world.answers()))
    history = next(t for t in world.answers() if "This thread" in t).splitlines()
    assert history[1].startswith('• original: "a lighthouse" · $')
    assert history[2].startswith('  • edit 1: "make it night" · $')
    assert history[3].startswith('  • edit 1: "add snow" · $') and "latest" in history[3]

    # /imagine-history in a channel: the user's own last images.
    await world.command("/imagine-history", "", user="U2", response_url=slack.response_url())
    await slack.wait_for(lambda: any("Your last 2 images" in t for t in world.answers()))
    mine = next(t for t in world.answers() if "Your last 2 images" in t)
    assert '"add snow"' in mine and '"make it night"' in mine and "a lighthouse" not in mine
