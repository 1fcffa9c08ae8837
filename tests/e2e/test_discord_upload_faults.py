"""Discord end to end: image posts refused for a while (429 with Discord's rate-limit JSON and
headers, 5xx) or answered with a 5xx after the message was created. Deliveries resume, and
each job's image is posted once and its status finalised once. The outbox's retry backoff is
capped short by IMAGINE_OUTBOX_RETRY_MAX so the test need not wait a minute."""

from __future__ import annotations

import pytest

from tests.e2e import test_discord
from tests.e2e.test_discord import USER, World

# The Discord world of test_discord.py, with this module's more_env.
world, prepare = test_discord.world, test_discord.prepare

SHORT_RETRIES = {"IMAGINE_OUTBOX_RETRY_MAX": "0.3"}
IMAGE_POST = r"^/channels/\d+/messages$"  # the status goes by webhook; only images POST here


def _done_edits(world: World) -> list:
    return [
        c
        for c in world.discord.calls
        if c.method == "PATCH" and isinstance(c.json, dict) and "Done" in str(c.json.get("content", ""))
    ]


async def _imagine_and_settle(world: World, prompt: str):
    discord = world.discord
    it = await discord.slash("imagine", {"prompt": prompt}, user_id=USER)
    await discord.wait_for(lambda: world.thread_images() and "Done" in world.original(it).content, timeout=40)
    return it


@pytest.mark.parametrize("more_env", [SHORT_RETRIES])
async def test_image_posts_refused_for_a_while_resume_and_post_once(world):
    discord = world.discord
    # A window of 429s (Discord's JSON and X-RateLimit headers; discord.py sleeps retry_after
    # and retries, then gives up to the outbox), then one of 503s, which discord.py does not
    # retry; a 502 after that it retries itself after a second.
    discord.refuse_for("POST", IMAGE_POST, 1.5, 429, retry_after=0.1)
    discord.refuse_for("POST", IMAGE_POST, 3.0, 503)
    await _imagine_and_settle(world, "a lighthouse in fog")
    assert len(world.thread_images()) == 1, discord.summary()
    assert len(_done_edits(world)) == 1
    refused = discord.calls_to("POST", IMAGE_POST)[:-1]
    assert len(refused) >= 3  # the outage was felt, and retried until it ended


@pytest.mark.parametrize("more_env", [SHORT_RETRIES])
async def test_a_single_502_and_429s_are_ridden_out(world):
    discord = world.discord
    for _ in range(2):
        discord.fail_next("POST", IMAGE_POST, 429, retry_after=0.2)
    discord.fail_next("POST", IMAGE_POST, 502)
    await _imagine_and_settle(world, "a lighthouse at dusk")
    assert len(world.thread_images()) == 1, discord.summary()
    assert len(_done_edits(world)) == 1
    assert len(discord.calls_to("POST", IMAGE_POST)) == 4


@pytest.mark.parametrize("more_env", [SHORT_RETRIES])
async def test_an_image_post_whose_answer_was_lost_is_not_posted_again(world):
    discord = world.discord
    # The message is created, then a 500 (discord.py retries it itself), then, on that retry,
    # a 503 (discord.py gives up and the outbox retries the delivery later).
    discord.lose_answers("POST", IMAGE_POST, 500)
    discord.lose_answers("POST", IMAGE_POST, 503)
    await _imagine_and_settle(world, "a lighthouse at noon")
    assert len(world.thread_images()) == 1, discord.summary()
    assert len(_done_edits(world)) == 1
    # discord.py's own retry met the nonce; the outbox's retry found the image in the thread.
    assert len(discord.calls_to("POST", IMAGE_POST)) == 2
