"""Slack end to end: /imagine and thread replies become images in the thread; forged, stale,
bad and unwelcome requests change nothing."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest

from tests.fakes.slack_server import (
    slash_command_body,
)
from tests.support.bot_process import read_jobs, stop_cleanly


async def test_imagine_posts_status_then_image_in_thread_and_a_reply_edits_it(world):
    slack, gemini = world.slack, world.gemini
    # Real models take 15-60 s; a little latency makes "generating" observable.
    gemini.latency = 0.5
    status, body, elapsed = await world.command(
        "/imagine", "a koi pond at dawn --ar 16:9", response_url=slack.response_url()
    )
    assert status == 200 and elapsed < 3.0, (status, body, elapsed)
    await slack.wait_for(lambda: len(slack.uploads) == 1 and "Done" in world.statuses()[0].text)
    [parent] = world.statuses()
    assert "<@U1>" in parent.blocks[0]["text"]["text"] and "a koi pond at dawn" in parent.blocks[0]["text"]["text"]
    assert [e["action_id"] for e in parent.blocks[-1]["elements"]] == [
        "imagine_reroll",
        "imagine_4k",
        "imagine_history",
        "imagine_delete",
    ]
    [upload] = slack.uploads
    assert (upload.channel, upload.thread_ts) == ("C1", parent.ts)
    assert gemini.requests[0].aspect_ratio == "16:9" and gemini.requests[0].prompt == "a koi pond at dawn"
    # The status went queued -> generating -> done, in place.
    updates = [c.args.get("text", "") for c in slack.calls_to("chat.update")]
    assert any("Generating" in t for t in updates) and "Done" in updates[-1]

    reply = {
        "type": "message",
        "channel": "C1",
        "user": "U2",
        "text": "make it night",
        "ts": "1800000000.000200",
        "thread_ts": parent.ts,
        "channel_type": "channel",
    }
    status, _, _ = await world.event(reply, "Ev-reply-1")
    assert status == 200
    await slack.wait_for(lambda: len(slack.uploads) == 2)
    edited = slack.uploads[1]
    assert (edited.channel, edited.thread_ts) == ("C1", parent.ts)
    assert gemini.requests[1].prompt == "make it night"
    assert gemini.requests[1].input_images == [upload.data]  # the image being edited
    assert gemini.requests[1].aspect_ratio == "16:9"  # settings carry over

    # Slack retries the same event: no second job, no second charge.
    status, _, _ = await world.event(
        reply, "Ev-reply-1", extra={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    )
    assert status == 200
    await world.settled()
    assert len(gemini.requests) == 2 and len(slack.uploads) == 2
    # Health and Prometheus metrics on the same HTTP port.
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{world.base}/healthz") as r:
            assert r.status == 200 and (await r.json())["store"] is True
        async with session.get(f"{world.base}/metrics") as r:
            metrics = await r.text()
    assert 'imagine_jobs{state="succeeded"} 2.0' in metrics
    assert 'imagine_provider_calls_total{model="gemini-3-pro-image",route="gemini",status="ok"} 2.0' in metrics
    assert (
        'imagine_spend_usd_total{lane="standard",team="T1"}' in metrics
        and "imagine_generation_seconds_bucket" in metrics
    )
    # A reply to the edited image edits the newest image in the thread.
    reply2 = {**reply, "text": "add stars", "ts": "1800000000.000300"}
    await world.event(reply2, "Ev-reply-2")
    await slack.wait_for(lambda: len(slack.uploads) == 3)
    assert gemini.requests[2].input_images == [edited.data]
    # Stopped, the bot has let every acked listener finish: the retried event made no job of its own.
    await stop_cleanly(world.proc)
    assert len(read_jobs(world.db)) == 3


async def test_forged_and_stale_requests_are_rejected_and_change_nothing(world):
    body = slash_command_body("/imagine", "a koi pond")
    status, _, _ = await world.post(body, secret="not-the-secret")
    assert status == 401
    status, _, _ = await world.post(body, timestamp=int(time.time()) - 600)
    assert status == 401
    await stop_cleanly(world.proc)  # every request it took is handled to the end: nothing more can happen
    assert world.slack.calls_to("chat.postMessage") == [] and world.gemini.requests == []
    assert read_jobs(world.db) == {}


async def test_bad_input_gets_an_ephemeral_answer_and_queues_nothing(world):
    slack = world.slack
    status, body, _ = await world.command("/imagine", "koi --bogus 3")
    assert status == 200
    answer = json.loads(body)
    assert answer["response_type"] == "ephemeral" and "--bogus" in answer["text"]
    url = slack.response_url()
    await world.command("/imagine", "koi --ar 7:3", response_url=url)
    await slack.wait_for(lambda: slack.responses)
    assert "aspect ratio '7:3'" in slack.responses[0]["text"] and slack.responses[0]["response_type"] == "ephemeral"
    # A reply in a thread that is not the bot's is ignored; a non-image attachment is refused.
    status, _, _ = await world.event(
        {
            "type": "message",
            "channel": "C1",
            "user": "U2",
            "text": "hello",
            "ts": "1800000000.000500",
            "thread_ts": "1700000000.999999",
        },
        "Ev-x",
    )
    assert status == 200
    await stop_cleanly(world.proc)  # its listener (acked already) runs to the end first
    assert world.gemini.requests == [] and slack.calls_to("chat.postMessage") == []
    assert read_jobs(world.db) == {}


async def test_non_image_reply_is_refused_in_the_thread(world):
    slack = world.slack
    await world.command("/imagine", "a lighthouse", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 1)
    parent = world.statuses()[0]
    text_file = slack.add_user_file(b"<html>not an image</html>", name="notes.png", mimetype="image/png", user="U2")
    await world.event(
        {
            "type": "message",
            "subtype": "file_share",
            "channel": "C1",
            "user": "U2",
            "text": "use this",
            "ts": "1800000000.000600",
            "thread_ts": parent.ts,
            "files": [text_file],
        },
        "Ev-file",
    )
    await slack.wait_for(lambda: any(m.ephemeral_user == "U2" for m in slack.posted("C1")))
    [note] = [m for m in slack.posted("C1") if m.ephemeral_user == "U2"]
    assert "not an image" in note.text and note.thread_ts == parent.ts
    assert len(world.gemini.requests) == 1
    assert slack.downloads and slack.downloads[0].headers["authorization"] == f"Bearer {slack.bot_token}"


@pytest.mark.parametrize("world", ['[access]\nteams = ["T9"]\n'], indirect=True)
async def test_a_workspace_not_on_the_allow_list_is_refused_clearly(world):
    slack = world.slack
    await world.command("/imagine", "a koi pond", response_url=slack.response_url())
    await world.command("/imagine-usage", "", response_url=slack.response_url())
    await world.command("/imagine-budget", "show", user="UADMIN", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 3)
    assert all("isn't enabled for this workspace" in t for t in world.answers()), world.answers()
    assert read_jobs(world.db) == {} and world.gemini.requests == []


async def test_a_status_that_cannot_be_posted_cancels_the_job_before_it_costs_anything(world):
    slack = world.slack
    slack.fail_next("chat.postMessage", "not_in_channel")
    await world.command("/imagine", "a koi pond", response_url=slack.response_url())
    await slack.wait_for(lambda: slack.responses)
    assert "Invite me" in slack.responses[0]["text"]
    [job] = read_jobs(world.db).values()
    assert job["state"] == "cancelled" and job["ledger"] == ["reservation", "release"], job
    assert world.gemini.requests == []
