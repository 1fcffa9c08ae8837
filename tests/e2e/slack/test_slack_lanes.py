"""Slack end to end: the relaxed (Flex, then Batch) and priority lanes."""

from __future__ import annotations

import json

from tests.fakes.gemini_server import error
from tests.support.slack_world import only_job


async def test_a_relaxed_request_is_answered_in_its_thread_by_the_flex_lane_at_half_price(world):
    slack, gemini = world.slack, world.gemini
    await world.command("/imagine", "a koi pond at dawn --relax --size 2K", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 1 and "Done" in world.statuses()[0].text)
    [parent] = world.statuses()
    [upload] = slack.uploads
    assert (upload.channel, upload.thread_ts) == ("C1", parent.ts)
    [sent] = gemini.requests
    assert sent.service_tier == "flex" and sent.image_size == "2K" and not gemini.batches
    updates = [c.args.get("text", "") for c in slack.calls_to("chat.update")]
    first = slack.calls_to("chat.postMessage")[0].args.get("text", "")
    assert "relaxed (Flex): half price, usually within 15 minutes" in first
    assert any("Flex lane" in t for t in updates)
    # Half of Standard's bill for the same answer: $0.0672 for the image, the rest at half too.
    [(_, _, usage)] = gemini.sent_usage
    standard = (
        (
            usage["candidatesTokenCount"]
            - usage["candidatesTokensDetails"][0]["tokenCount"]
            + usage.get("thoughtsTokenCount", 0)
        )
        * 12
        + usage["promptTokenCount"] * 2
        + 1120 * 120
    )
    lane, state, result, ledger = only_job(world.db)
    assert (lane, state, ledger) == ("flex", "succeeded", {"flex"})
    assert round(float(json.loads(result)["cost_usd"]) * 1_000_000) == round(standard / 2)


async def test_a_flex_request_google_sheds_moves_to_the_batch_lane_and_the_user_is_told(world):
    slack, gemini = world.slack, world.gemini
    gemini.script_flex(error(503))
    await world.command("/imagine", "a koi pond --relax", response_url=slack.response_url())
    await slack.wait_for(
        lambda: any("moved to the Batch lane" in c.args.get("text", "") for c in slack.calls_to("chat.update"))
    )
    lane, state, _, ledger = only_job(world.db)
    # Waiting for the Batch runner (or in its batch already), still held at the Flex price.
    assert lane == "batch" and state in ("queued", "running") and ledger == {"flex"}
    assert [r.service_tier for r in gemini.requests] == ["flex"]


async def test_priority_needs_the_team_policy(world):
    await world.command("/imagine", "a koi pond --priority", response_url=world.slack.response_url())
    await world.slack.wait_for(lambda: world.slack.responses)
    assert "not enabled for this team" in world.answers()[-1] and not world.gemini.requests
