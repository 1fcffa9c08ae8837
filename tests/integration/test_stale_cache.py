"""The stale cache, the fallback chain's last resort: when every route is down, the
team's own earlier image for the identical request is served at $0, marked as such.
Service -> queue -> worker -> router -> real google-genai client -> fake Gemini."""

from __future__ import annotations

from adapters.discord import render as discord_render
from adapters.slack import render as slack_render
from bot import cli
from bot.result_notes import STALE
from bot.service import Caller
from bot.types import Delivery, JobState
from tests.fakes import openai_server
from tests.fakes.gemini_server import error, finish
from tests.fakes.openai_server import FakeGateway
from tests.support.pipeline import RoutedPipeline, started_then

DAY = 86400.0
DOWN = [error(503)] * 20  # every call, on every route, for every attempt


async def made_long_ago(p: RoutedPipeline, **kw) -> int:
    """An image for the koi pond request, made two days ago: long past the cache's TTL."""
    first = await p.finished(**kw)

    def age() -> None:
        with p.store._write() as c:
            c.execute("UPDATE jobs SET finished_at = finished_at - ? WHERE id = ?", (2 * DAY, first.job_id))

    await p.store._run(age)
    return first.job_id


async def test_when_every_route_is_down_the_earlier_identical_image_is_served_free(sqlite_store, fake):
    async with RoutedPipeline(sqlite_store, fake, policy={"fallback": {"pro": ["flash"]}}) as p:
        first = await made_long_ago(p)
        fake.script(*DOWN)
        again = await p.finished()
        assert not again.cached and again.estimate_usd > 0  # past the TTL: queued and held like any request
    job = await sqlite_store.get_job(again.job_id)
    earlier = await sqlite_store.get_job(first)
    assert job.state is JobState.SUCCEEDED and job.attempt == 1  # served at once, not after the retries
    # Pro and then Flash were asked: the whole chain was down before the stale answer.
    assert [r.model for r in fake.requests[1:]] == ["gemini-3-pro-image", "gemini-3.1-flash-image"]
    image, earlier_image = (
        await sqlite_store.get_image(job.result_image_id),
        await sqlite_store.get_image(earlier.result_image_id),
    )
    assert image.data == earlier_image.data
    assert job.result["stale"] and job.result["stale_from_job"] == first and job.result["cost_usd"] == "0"
    # Its hold released whole, nothing charged; the result delivered once.
    assert [(r["entry"], r["status"]) for r in await sqlite_store.ledger() if r["job_id"] == job.id] == [
        ("reservation", "held"),
        ("release", "released"),
    ]
    assert started_then(p.notifier.kinds(job.id), "result")
    for rendered in (slack_render.done(p.result_payload(job.id)), discord_render.done(p.result_payload(job.id))):
        assert STALE in rendered and "free" in rendered


async def test_a_reroll_is_never_answered_stale(sqlite_store, fake):
    async with RoutedPipeline(sqlite_store, fake, max_attempts=1) as p:
        first = await made_long_ago(p)
        fake.script(*DOWN)
        reroll = await p.service.rerun(first, Caller("T1", "U1"), platform="test", channel="C1")
        await p.service.attach_delivery(reroll.job_id, {})
        await p.notifier.wait_final(reroll.job_id)
    assert (await sqlite_store.get_job(reroll.job_id)).state is JobState.DEAD


async def test_another_teams_image_is_never_served_stale(sqlite_store, fake):
    async with RoutedPipeline(sqlite_store, fake, max_attempts=1) as p:
        await made_long_ago(p, team="T1")
        fake.script(*DOWN)
        other = await p.finished(team="T2")
    assert (await sqlite_store.get_job(other.job_id)).state is JobState.DEAD


async def test_a_team_that_turns_it_off_gets_the_failure(sqlite_store, fake):
    teams = {"T1": {"stale_cache_fallback": False}}
    async with RoutedPipeline(sqlite_store, fake, teams=teams, max_attempts=1) as p:
        await made_long_ago(p)
        fake.script(*DOWN)
        again = await p.finished()
    job = await sqlite_store.get_job(again.job_id)
    assert (job.state, job.error_class) == (JobState.DEAD, "overloaded")


async def test_an_image_a_fallback_made_is_never_served_stale(sqlite_store, fake):
    async with RoutedPipeline(sqlite_store, fake, policy={"fallback": {"pro": ["flash"]}}, max_attempts=1) as p:
        fake.script(error(503))  # pro down, so flash made the first one
        first = await made_long_ago(p)
        assert (await sqlite_store.get_job(first)).result["fallback_from"] == "pro (overloaded)"
        fake.script(*DOWN)
        again = await p.finished()
    assert (await sqlite_store.get_job(again.job_id)).state is JobState.DEAD


async def test_a_refusal_is_not_answered_stale(sqlite_store, fake):
    async with RoutedPipeline(sqlite_store, fake) as p:
        await made_long_ago(p)
        fake.script(finish("IMAGE_SAFETY"))
        again = await p.finished()
    assert (await sqlite_store.get_job(again.job_id)).state is JobState.BLOCKED


async def test_the_cli_says_the_image_is_an_earlier_one(sqlite_store, fake, tmp_path, capsys):
    async with RoutedPipeline(sqlite_store, fake) as p:
        await made_long_ago(p)
        fake.script(*DOWN)
        again = await p.finished()
    job = await sqlite_store.get_job(again.job_id)
    delivery = Delivery(1, "k", job.id, "cli", "result", p.result_payload(job.id), 0)
    assert cli.report(cli.Finished(delivery, job), tmp_path / "out.png") == cli.EXIT_OK
    printed = capsys.readouterr().out
    assert "cost $0 " in printed and STALE in printed


async def test_with_gemini_and_the_gateway_both_down_the_earlier_image_is_served(sqlite_store, fake):
    async with (
        FakeGateway() as gateway,
        RoutedPipeline(sqlite_store, fake, policy={"fallback": {"pro": ["openrouter:pro"]}}, gateway=gateway) as p,
    ):
        first = await made_long_ago(p)
        fake.script(*DOWN)
        gateway.script(*[openai_server.error(429)] * 20)
        again = await p.finished()
    job = await sqlite_store.get_job(again.job_id)
    assert (job.state, job.result["stale_from_job"], job.result["unavailable"]) == (
        JobState.SUCCEEDED,
        first,
        "overloaded",
    )  # the first route's error: Gemini's 503
    assert len(gateway.requests) == 1  # the chain went through the gateway before the stale answer
