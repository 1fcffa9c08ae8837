"""The Slack adapter acks first and does the rest after: in this process, against the fake Slack,
with a store whose clock the test moves (the announce window)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from adapters.after_ack import DEFAULT_SLOTS
from adapters.slack.app import SlackAdapter
from bot.catalog import load_catalog
from bot.service import ImagineService
from bot.settings import Settings
from bot.store.ports import ANNOUNCE_WINDOW
from bot.store.sqlite import SQLiteStore
from bot.types import JobState
from tests.fakes.slack_server import event_body, slash_command_body
from tests.support.probe import eventually

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def store(tmp_path: Path, clock):
    opened = SQLiteStore(str(tmp_path / "bot.db"), clock=clock)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def service(store):
    return ImagineService(store, load_catalog())


@pytest.fixture
async def adapter(slack, service):
    settings = Settings(_env_file=None, slack_bot_token="xoxb-test", slack_api_url=slack.url, slack_signing_secret=None)
    made = SlackAdapter(settings, service)
    yield made
    await made.close()


async def _imagine(adapter: SlackAdapter, text: str, **kw) -> tuple[int, str]:
    response = await adapter.app.async_dispatch(
        AsyncBoltRequest(body=slash_command_body("/imagine", text, **kw), headers=FORM)
    )
    return response.status, response.body


async def test_acks_leave_before_the_status_posts_and_a_stop_finishes_every_acked_request(slack, store, adapter):
    slack.hold("chat.postMessage")  # Slack's Web API is slow today: the work after the ack waits on it
    n = DEFAULT_SLOTS + 4
    for i in range(n):
        assert await _imagine(adapter, f"a koi pond {i}", user_id=f"U{i}") == (200, "")
    # Only a slot's worth is under way; the rest waits its turn.
    await eventually(lambda: len(slack.calls_to("chat.postMessage")) == DEFAULT_SLOTS)
    await eventually(lambda: adapter._after_ack.pending == n)
    # Stopping now runs every acked request to the end once Slack answers.
    slack.release("chat.postMessage")
    await adapter.close()
    assert len(slack.calls_to("chat.postMessage")) == n and len(slack.posted("C1")) == n
    for job_id in range(1, n + 1):
        job = await store.get_job(job_id)
        assert job.state is JobState.QUEUED and job.delivery.get("status_ts"), job


async def test_a_refusal_reaches_the_asker_after_an_empty_ack(slack, store, adapter):
    """The core decides after the ack; its refusal goes to the command's response_url."""
    url = slack.response_url()
    assert await _imagine(adapter, "a koi pond --model lite", response_url=url) == (200, "")
    await slack.wait_for(lambda: slack.responses)
    [answer] = slack.responses
    assert answer["response_type"] == "ephemeral" and "price" in answer["text"].lower(), answer
    assert slack.calls_to("chat.postMessage") == [] and await store.get_job(1) is None


async def test_a_process_that_dies_after_the_ack_never_runs_the_job_nor_keeps_its_hold(slack, store, adapter, clock):
    """Killed after submit and before the status is recorded: the job was announced, so the
    store cancels it when the announce window ends, and releases its hold."""
    slack.hold("chat.postMessage")
    assert await _imagine(adapter, "a koi pond") == (200, "")
    await slack.wait_for(lambda: slack.calls_to("chat.postMessage"))  # submitted, the status on its way
    job = await store.get_job(1)
    assert job.state is JobState.QUEUED and job.held_micros > 0
    await adapter._after_ack.drain(timeout=0)  # the process dies: its work stops where it is
    clock.advance(ANNOUNCE_WINDOW + 1)
    assert await store.lease("w", 60) is None
    job = await store.get_job(1)
    assert (job.state, job.error_class, job.held_micros, job.attempt) == (JobState.CANCELLED, "not_announced", 0, 0)
    assert [row["entry"] for row in await store.ledger()] == ["reservation", "release"]
    slack.release("chat.postMessage")


async def test_a_re_sent_event_is_taken_once(slack, adapter, service, monkeypatch):
    """Slack re-sends an event it thought unanswered (X-Slack-Retry-Num); the copy is dropped
    before any database read."""
    looked_up: list[str] = []

    async def thread_image(platform: str, team: str, channel: str, thread_ts: str) -> int | None:
        looked_up.append(thread_ts)
        return None

    monkeypatch.setattr(service, "thread_image", thread_image)
    reply = {"type": "message", "channel": "C1", "user": "U1", "text": "make it night", "ts": "2.0", "thread_ts": "1.0"}
    body = json.loads(event_body(reply, event_id="Ev-1"))
    for retry in (None, "1", "2"):
        headers = {"content-type": "application/json", **({"x-slack-retry-num": retry} if retry else {})}
        response = await adapter.app.async_dispatch(AsyncBoltRequest(body=json.dumps(body), headers=headers))
        assert response.status == 200
    await adapter.close()
    assert looked_up == ["1.0"]
