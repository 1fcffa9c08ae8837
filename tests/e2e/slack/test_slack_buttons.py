"""Slack end to end: the buttons. Reroll, 4K and delete on an image; Run and Use Flash on the
question an expensive request asks first; a double click makes one job."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.bot_process import read_jobs, stored_results

ALREADY = "Already on it"


async def test_reroll_4k_and_delete_buttons(world):
    slack, gemini = world.slack, world.gemini
    await world.command("/imagine", "a red fox", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 1 and "Done" in world.statuses()[0].text)
    parent = world.statuses()[0]
    job_id = parent.blocks[-1]["elements"][0]["value"]
    await world.click("imagine_reroll", job_id, "U2", parent.ts, response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 2)
    assert slack.uploads[1].thread_ts == parent.ts and gemini.requests[1].prompt == "a red fox"
    await world.click("imagine_4k", job_id, "U1", parent.ts, response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 3)
    assert gemini.requests[2].image_size == "4K"
    # Delete: not the requester, not an admin -> refused; the requester may.
    url = slack.response_url()
    await world.click("imagine_delete", job_id, "U2", parent.ts, response_url=url)
    await slack.wait_for(lambda: slack.responses)
    assert "Only the person who asked" in slack.responses[-1]["text"]
    assert slack.calls_to("files.delete") == []
    assert stored_results(world.db)[int(job_id)] is True
    await world.click("imagine_delete", job_id, "U1", parent.ts, response_url=slack.response_url())
    await slack.wait_for(lambda: slack.calls_to("files.delete"))
    assert slack.uploads[0].deleted
    # The core deleted the image itself first: its bytes are gone, the rerolls' are not.
    # (Its row stays as a tombstone, without bytes.)
    stored = stored_results(world.db)
    assert stored[int(job_id)] is False and sorted(stored.values()) == [False, True, True]


@pytest.mark.parametrize("world", ["[policy]\nconfirm_above_usd = 0.20\n"], indirect=True)
async def test_an_expensive_request_asks_first_and_runs_on_confirmation(world):
    slack = world.slack
    await world.command("/imagine", "a cathedral --size 4K", response_url=slack.response_url())
    await slack.wait_for(lambda: slack.responses)
    question = slack.responses[0]
    assert question["response_type"] == "ephemeral" and world.gemini.requests == []
    buttons = question["blocks"][-1]["elements"]
    assert [b["action_id"] for b in buttons] == ["imagine_confirm_run", "imagine_confirm_flash"]
    await world.click(
        "imagine_confirm_flash",
        buttons[1]["value"],
        "U1",
        "1700000000.000100",
        container={"type": "message", "message_ts": "1700000000.000100", "channel_id": "C1", "is_ephemeral": True},
        response_url=slack.response_url(),
    )
    await slack.wait_for(lambda: len(slack.uploads) == 1)
    assert world.gemini.requests[0].model == "gemini-3.1-flash-image"
    assert world.gemini.requests[0].image_size == "4K"


async def test_a_double_click_on_reroll_or_4k_makes_one_job(world):
    slack = world.slack
    await world.command("/imagine", "a red fox", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 1 and "Done" in world.statuses()[0].text)
    parent = world.statuses()[0]
    job_id = parent.blocks[-1]["elements"][0]["value"]
    # A double click: two presses of one button arrive together...
    await asyncio.gather(
        *(world.click("imagine_reroll", job_id, "U2", parent.ts, response_url=slack.response_url()) for _ in range(2))
    )
    await slack.wait_for(lambda: sum(ALREADY in t for t in world.answers()) == 1)
    # ...or one right after the other.
    for _ in range(2):
        await world.click("imagine_4k", job_id, "U1", parent.ts, response_url=slack.response_url())
    await slack.wait_for(lambda: sum(ALREADY in t for t in world.answers()) == 2)
    await slack.wait_for(lambda: len(slack.uploads) == 3)
    jobs = read_jobs(world.db)
    assert len(jobs) == 3 and all(j["ledger"].count("reservation") == 1 for j in jobs.values()), jobs
    # The reroll and the 4K job may reach the model in either order: two workers' slots.
    assert sorted(r.image_size for r in world.gemini.requests) == ["2K", "2K", "4K"]
    assert not [t for t in world.answers() if "Sorry" in t or "expired" in t], world.answers()


@pytest.mark.parametrize("world", ["[policy]\nconfirm_above_usd = 0.20\n"], indirect=True)
async def test_a_double_click_on_run_makes_one_job_and_never_says_expired(world):
    slack = world.slack
    token = await world.asked("a cathedral --size 4K")
    presses = ["imagine_confirm_run", "imagine_confirm_run", "imagine_confirm_flash"]
    await asyncio.gather(*(world.answer(action, token) for action in presses))
    await slack.wait_for(lambda: sum(ALREADY in t for t in world.answers()) == 2)
    await slack.wait_for(lambda: len(slack.uploads) == 1)
    jobs = read_jobs(world.db)
    assert len(jobs) == 1 and jobs[1]["ledger"].count("reservation") == 1, jobs
    assert [r.model for r in world.gemini.requests] == ["gemini-3-pro-image"]  # one image, the one first asked
    assert not [t for t in world.answers() if "expired" in t or "Going ahead" in t or "Sorry" in t], world.answers()
