"""Operator alerts: error rate and p99 latency, once per episode, through the outbox."""

from __future__ import annotations

import asyncio

import pytest

from bot.alerts import CallWatch
from bot.catalog import load_catalog
from bot.notify import OutboxDispatcher
from bot.service import ImagineService
from bot.settings import Settings
from tests.fakes.slack_server import FakeSlack


@pytest.fixture
async def db(store):  # on every store kind
    return store


def watch_on(store, clock, platforms=("slack", "discord")) -> CallWatch:
    return CallWatch(store, list(platforms), window=50, min_calls=20, clock=clock)


async def feed(watch: CallWatch, calls: list[tuple[str | None, float]]) -> None:
    for kind, seconds in calls:
        watch.observe(error_kind=kind, seconds=seconds)
    await asyncio.sleep(0)  # let the queued alert writes run
    await asyncio.gather(*watch._sending)


async def alerts(store, platform="slack") -> list[str]:
    rows = await store.claim_deliveries([platform], 100, 60)
    for row in rows:
        await store.mark_delivered(row.id)
    return [r.payload["text"] for r in rows if r.kind == "alert"]


async def test_error_rate_alerts_once_per_episode_and_says_when_it_recovers(db, clock):
    watch = watch_on(db, clock)
    await feed(watch, [(None, 10.0)] * 30)
    assert await alerts(db) == []
    await feed(watch, [("overloaded", 10.0)] * 2)  # 2 of 32: 6%
    [text] = await alerts(db)
    assert "failing" in text and "2 of the last 32" in text and "overloaded x2" in text
    await feed(watch, [("overloaded", 10.0)] * 10 + [("quota", 5.0)] * 5)
    assert await alerts(db) == []  # the same episode: said once
    await feed(watch, [(None, 10.0)] * 50)
    [text] = await alerts(db)
    assert text.startswith("Recovered:") and "1 of the last 50" in text  # 2%: well under 5%
    # A new episode later is a new alert; the other platform got each one too.
    clock.advance(3600)
    await feed(watch, [("auth", 1.0)] * 3)
    [text] = await alerts(db)
    assert "auth x3" in text
    assert len(await alerts(db, "discord")) == 3


async def test_too_few_calls_are_not_a_rate_and_blocked_prompts_are_not_failures(db, clock):
    watch = watch_on(db, clock)
    await feed(watch, [("overloaded", 1.0)] * 5)
    assert await alerts(db) == []  # 5 calls: not yet min_calls
    watch = watch_on(db, clock)
    await feed(watch, [(None, 1.0)] * 20 + [("blocked", 1.0)] * 20)
    assert await alerts(db) == []


async def test_p99_latency_over_30_seconds_alerts(db, clock):
    watch = watch_on(db, clock)
    await feed(watch, [(None, 12.0)] * 40)
    assert await alerts(db) == []
    await feed(watch, [(None, 45.0)])
    [text] = await alerts(db)
    assert "slow" in text and "45 s" in text


async def test_several_processes_seeing_one_episode_post_it_once(store_factory, clock):
    stores = [await store_factory() for _ in range(3)]
    for store in stores:
        await feed(watch_on(store, clock), [(None, 1.0)] * 20 + [("overloaded", 1.0)] * 5)
    assert len(await alerts(stores[0])) == 1


async def test_the_dispatcher_hands_alerts_to_the_slack_adapter_which_posts_to_the_alert_channel(db, clock):
    from adapters.slack.app import SlackAdapter

    async with FakeSlack() as slack:
        settings = Settings(
            _env_file=None,
            slack_bot_token=slack.bot_token,
            slack_signing_secret="s",
            slack_api_url=slack.url,
            slack_alert_channel="CMODS",
        )
        adapter = SlackAdapter(settings, ImagineService(db, load_catalog()))
        dispatcher = OutboxDispatcher(db, [adapter])
        assert await db.raise_alert("alert:error_rate:1", ["slack"], "Image generation is failing: <!channel>")
        assert not await db.raise_alert("alert:error_rate:1", ["slack"], "again")
        assert await dispatcher.dispatch_once() == 1
        [message] = slack.posted("CMODS")
        assert message.text.startswith(":rotating_light: Image generation is failing")
        assert "<!channel>" not in message.text  # escaped: an alert must not ping everyone
        assert await dispatcher.dispatch_once() == 0
        await adapter.close()


async def test_a_second_episode_soon_after_recovery_is_posted_too(db, clock):
    watch = watch_on(db, clock)
    await feed(watch, [(None, 1.0)] * 20 + [("overloaded", 1.0)] * 3)
    await feed(watch, [(None, 1.0)] * 50)
    assert len(await alerts(db)) == 2  # the alert and its recovery
    await feed(watch, [("quota", 1.0)] * 3)  # trouble again within the same ten minutes
    [text] = await alerts(db)
    assert "quota x3" in text
