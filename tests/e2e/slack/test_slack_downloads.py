"""Slack end to end: what can be refused from a file's metadata (how many, what type, how
big, a quota or a budget already used up) is refused before any file is downloaded."""

from __future__ import annotations

import pytest

from tests.support.images import png_bytes

POLICY = "[policy]\nconfirm_above_usd = 10\n"


async def _reply_with_files(world, files: list[dict], event_id: str, *, user: str = "U2") -> str:
    """/imagine an image, then reply in its thread with `files`; the private answer's text."""
    slack = world.slack
    await world.command("/imagine", "a lighthouse", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 1)
    parent = world.statuses()[0]
    await world.event(
        {
            "type": "message",
            "subtype": "file_share",
            "channel": "C1",
            "user": user,
            "text": "use these",
            "ts": "1800000000.000600",
            "thread_ts": parent.ts,
            "files": files,
        },
        event_id,
    )
    await slack.wait_for(lambda: any(m.ephemeral_user == user for m in slack.posted("C1")))
    [note] = [m for m in slack.posted("C1") if m.ephemeral_user == user]
    assert note.thread_ts == parent.ts
    return note.text


@pytest.mark.parametrize("world", [POLICY + "[models.pro]\nmax_reference_images = 2\n"], indirect=True)
async def test_more_images_than_the_model_takes_are_refused_before_any_download(world):
    slack = world.slack
    photos = [slack.add_user_file(png_bytes(8, 8, "red"), name=f"p{n}.png", user="U2") for n in range(2)]
    text = await _reply_with_files(world, photos, "Ev-many")
    # Two attachments plus the image being edited: three, for a model that takes two.
    assert "pro takes up to 2 images; you sent 3" in text, text
    assert slack.downloads == []
    assert len(world.gemini.requests) == 1


@pytest.mark.parametrize("world", [POLICY + "user_images_per_day = 1\n"], indirect=True)
async def test_a_user_past_their_daily_images_is_refused_before_any_download(world):
    slack = world.slack
    photo = slack.add_user_file(png_bytes(8, 8, "red"), user="U1")
    text = await _reply_with_files(world, [photo], "Ev-quota", user="U1")
    assert "1 of your 1 images for today" in text, text
    assert slack.downloads == []


async def test_a_file_that_says_it_is_not_an_image_is_never_downloaded(world):
    slack = world.slack
    pdf = slack.add_user_file(b"%PDF-1.7", name="notes.pdf", mimetype="application/pdf", user="U2")
    text = await _reply_with_files(world, [pdf], "Ev-pdf")
    assert "notes.pdf is not an image" in text, text
    assert slack.downloads == []
