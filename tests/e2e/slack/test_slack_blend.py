"""Slack end to end: a blend. Slash commands carry no files, so a new request with images is a
message that mentions the bot (`@imagine the three of them at a picnic --ar 16:9` with the
files attached); a reply in an image's thread may carry several files too. More images than
the model takes are refused before anything is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.images import png_bytes

POLICY = "[policy]\nconfirm_above_usd = 10\n"
THREE_FOR_PRO = POLICY + "[models.pro]\nmax_reference_images = 3\n"
MANIFEST = Path(__file__).parents[3] / "adapters" / "slack" / "manifest.yaml"


def mention(text: str, files: list[dict], *, ts: str = "1800000000.000100", user: str = "U1") -> dict:
    """The app_mention event of a channel message that mentions the bot, with its files."""
    return {
        "type": "app_mention",
        "user": user,
        "text": f"<@UBOT> {text}",
        "ts": ts,
        "channel": "C1",
        "event_ts": ts,
        "files": files,
        "upload": False,
    }


def photos(slack, count: int, user: str = "U1") -> tuple[list[bytes], list[dict]]:
    data = [png_bytes(8 + n, 8, ("red", "green", "blue", "gray", "navy")[n % 5]) for n in range(count)]
    return data, [slack.add_user_file(d, name=f"p{n}.png", user=user) for n, d in enumerate(data)]


async def private_note(slack, user: str = "U1"):
    """The one message only `user` sees in C1."""
    await slack.wait_for(lambda: any(m.ephemeral_user == user for m in slack.posted("C1")))
    [note] = [m for m in slack.posted("C1") if m.ephemeral_user == user]
    return note


async def test_a_mention_with_three_files_blends_all_three(world):
    slack, gemini = world.slack, world.gemini
    data, files = photos(slack, 3)
    status, _, _ = await world.event(mention("the three of them at a picnic --ar 16:9", files), "Ev-blend")
    assert status == 200
    await slack.wait_for(lambda: len(slack.uploads) == 1)
    [request] = gemini.requests
    assert request.prompt == "the three of them at a picnic" and request.aspect_ratio == "16:9"
    assert request.input_images == data  # all three, in the order they were attached
    [parent] = world.statuses()
    assert "the three of them at a picnic" in parent.blocks[0]["text"]["text"]
    assert slack.uploads[0].thread_ts == parent.ts
    # The estimate it was queued with priced all three, and says so.
    [queued] = [c.args for c in slack.calls_to("chat.postMessage") if c.args.get("channel") == "C1"]
    assert "for a blend of 3 images" in json.dumps(queued)
    # Slack re-sends the event: the same job, nothing downloaded or made twice.
    await world.event(mention("the three of them at a picnic --ar 16:9", files), "Ev-blend")
    await world.settled()
    assert len(gemini.requests) == 1 and len(slack.downloads) == 3


async def test_a_reply_with_two_files_blends_them_into_the_edit(world):
    slack, gemini = world.slack, world.gemini
    await world.command("/imagine", "a picnic blanket", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 1)
    [parent] = world.statuses()
    data, files = photos(slack, 2, user="U2")
    reply = {
        "type": "message",
        "subtype": "file_share",
        "channel": "C1",
        "user": "U2",
        "text": "put these two on it",
        "ts": "1800000000.000600",
        "thread_ts": parent.ts,
        "files": files,
    }
    await world.event(reply, "Ev-reply-blend")
    await slack.wait_for(lambda: len(slack.uploads) == 2)
    # The image being edited first, then the two files.
    assert gemini.requests[1].input_images == [slack.uploads[0].data, *data]


@pytest.mark.parametrize("world", [THREE_FOR_PRO], indirect=True)
async def test_more_files_than_the_model_takes_are_refused_before_any_download(world):
    slack = world.slack
    _, files = photos(slack, 5)
    await world.event(mention("all five of them", files), "Ev-five")
    note = await private_note(slack)
    assert note.text == "pro takes up to 3 images; you sent 5. Send fewer images."
    assert slack.downloads == [] and world.gemini.requests == []


async def test_a_mention_without_a_prompt_says_how_to_ask(world):
    slack = world.slack
    _, files = photos(slack, 2)
    await world.event(mention("", files), "Ev-empty")
    note = await private_note(slack)
    assert note.text.startswith("Tell me what to draw.")
    assert slack.downloads == [] and world.gemini.requests == []


def test_the_app_manifest_subscribes_to_mentions():
    manifest = MANIFEST.read_text()
    assert "      - app_mention\n" in manifest and "      - app_mentions:read\n" in manifest


def as_message(event: dict) -> dict:
    """The message event Slack sends for the same channel message (subtype file_share)."""
    return {**event, "type": "message", "subtype": "file_share", "channel_type": "channel"}


async def test_a_mention_that_comes_as_app_mention_and_as_a_message_is_one_request(world):
    slack, gemini = world.slack, world.gemini
    data, files = photos(slack, 2)
    said = mention("the two of them at a picnic", files)
    await world.event(said, "Ev-as-mention")
    await world.event(as_message(said), "Ev-as-message")  # another event id, the same message
    await slack.wait_for(lambda: len(slack.uploads) == 1)
    await world.settled()
    assert len(gemini.requests) == 1 and gemini.requests[0].input_images == data
    assert len(world.statuses()) == 1


async def test_a_mention_that_comes_only_as_a_message_event_is_still_a_request(world):
    # A file shared with a mention can reach an app as a message event alone (bolt-python#925).
    slack, gemini = world.slack, world.gemini
    data, files = photos(slack, 2)
    await world.event(as_message(mention("the two of them on a boat", files)), "Ev-only-message")
    await slack.wait_for(lambda: len(slack.uploads) == 1)
    [request] = gemini.requests
    assert request.prompt == "the two of them on a boat" and request.input_images == data


async def test_a_channel_message_with_files_but_no_mention_is_left_alone(world):
    slack, gemini = world.slack, world.gemini
    _, files = photos(slack, 1)
    said = {**as_message(mention("just a holiday photo", files)), "text": "just a holiday photo"}
    await world.event(said, "Ev-no-mention")
    await world.command("/imagine", "a lighthouse", response_url=slack.response_url())  # a marker after it
    await slack.wait_for(lambda: len(slack.uploads) == 1)
    await world.settled()
    assert [r.prompt for r in gemini.requests] == ["a lighthouse"]
