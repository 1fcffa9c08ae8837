"""Hedging: after hedge_after_s without an image the next route in the chain is
asked too and the first image wins, with the real Gemini provider against the
fake Gemini, and the fake gateway for a two-route chain."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
from decimal import Decimal

import pytest

from adapters import status
from adapters.slack import render as slack_render
from bot.catalog import load_catalog
from bot.money import pricing, to_micros, usd
from bot.providers.errors import BlockedError, OverloadedError
from bot.providers.gemini import GeminiProvider
from bot.providers.openai_compat import OpenAICompatProvider
from bot.providers.router import Route, RoutedProvider
from bot.reports import render_ledger
from bot.types import HedgeCall, ImagineRequest, JobState, Lane
from policies.config import PolicyBook
from tests.fakes import openai_server
from tests.fakes.gemini_server import error, finish, hang, ok, slow
from tests.fakes.openai_server import FakeGateway
from tests.support.jobs import spec
from tests.support.pipeline import RoutedPipeline

HEDGED = dataclasses.replace(spec(), fallbacks=("flash",), hedge_after_s=0.2)


def gemini(fake) -> GeminiProvider:
    return GeminiProvider.create(api_key="k", base_url=fake.url, vertexai=False, timeout_seconds=30)


def two_routes(fake, gateway) -> RoutedProvider:
    """Gemini, and a gateway serving Pro: a hedge for Pro can go to either."""
    catalog = load_catalog()
    openrouter = OpenAICompatProvider.create(
        name="openrouter",
        base_url=gateway.url,
        api_key="gw-key",
        timeout_seconds=30,
        models={"pro": "google/gemini-3-pro-image-preview"},
        gateway=catalog.gateways["openrouter"],
    )
    return RoutedProvider(
        [Route("gemini", gemini(fake)), Route("openrouter", openrouter, serves=frozenset({"pro"}))], catalog
    )


async def test_a_slow_primary_is_hedged_the_first_image_wins_and_the_primary_is_cancelled(fake):
    fake.script(hang(), ok())  # pro never answers; flash does
    routed = RoutedProvider([Route("gemini", gemini(fake))], load_catalog())
    result = await routed.generate(HEDGED, [])
    assert [r.model for r in fake.requests] == ["gemini-3-pro-image", "gemini-3.1-flash-image"]
    assert (result.route, result.model_alias) == ("gemini", "flash")
    # Another model made it: a fallback's image, which the cache never reuses.
    assert result.fallback_from == "pro (no answer after 0.2 s)"
    assert (result.hedge.route, result.hedge.model_alias, result.hedge.won) == ("gemini", "pro", True)
    assert result.hedge.answer is None  # cancelled unanswered: nothing to settle
    await fake.wait_for(lambda: fake.cancelled == 1)  # the connection was closed, not left to run
    await routed.close()


async def test_a_primary_that_answers_in_time_sends_no_hedge(fake):
    routed = RoutedProvider([Route("gemini", gemini(fake))], load_catalog())
    # A generous deadline: the first call of a fresh client can take longer than 0.2 s on a
    # loaded machine, which is a late primary, not the case this test is about.
    result = await routed.generate(dataclasses.replace(HEDGED, hedge_after_s=30), [])
    assert len(fake.requests) == 1 and result.hedge is None and result.fallback_from is None
    await routed.close()


async def test_when_the_primary_wins_the_hedge_is_cancelled_and_the_result_says_so(fake):
    fake.script(slow(2.0), hang())  # slow enough that a loaded machine still hedges first
    routed = RoutedProvider([Route("gemini", gemini(fake))], load_catalog())
    result = await routed.generate(HEDGED, [])
    assert (result.model_alias, result.fallback_from) == ("pro", None)
    assert (result.hedge.model_alias, result.hedge.won, result.hedge.answer) == ("flash", False, None)
    assert 0.15 < result.hedge.after_s < 1.9
    await fake.wait_for(lambda: fake.cancelled == 1)
    await routed.close()


async def test_a_refusal_while_the_hedge_is_in_flight_ends_the_attempt(fake):
    fake.script(slow(0.5, finish("IMAGE_SAFETY")), hang())
    routed = RoutedProvider([Route("gemini", gemini(fake))], load_catalog())
    with pytest.raises(BlockedError) as caught:
        await routed.generate(HEDGED, [])
    assert caught.value.hedge.model_alias == "flash" and caught.value.hedge.answer is None
    await fake.wait_for(lambda: fake.cancelled == 1)  # the other model never gets to answer instead
    await routed.close()


async def test_a_failing_primary_falls_back_at_once_without_waiting_for_the_hedge(fake):
    fake.script(error(503), ok())
    routed = RoutedProvider([Route("gemini", gemini(fake))], load_catalog())
    result = await asyncio.wait_for(routed.generate(dataclasses.replace(HEDGED, hedge_after_s=30), []), 10)
    assert (result.model_alias, result.fallback_from, result.hedge) == ("flash", "pro (overloaded)", None)
    await routed.close()


async def test_a_slow_gemini_is_hedged_on_the_gateway_route(fake):
    async with FakeGateway() as gateway:
        routed = two_routes(fake, gateway)
        fake.script(hang())
        result = await routed.generate(dataclasses.replace(HEDGED, fallbacks=("openrouter:pro",)), [])
        assert (result.route, result.model_alias) == ("openrouter", "pro")
        assert result.cost_usd == Decimal("0.0021")  # the gateway's reported charge settles it
        assert (result.hedge.route, result.hedge.won, result.hedge.answer) == ("gemini", True, None)
        await fake.wait_for(lambda: fake.cancelled == 1)
        await routed.close()


# A passing overload, or a refusal of the gateway's own (a 401): either is only the hedge's outcome.
@pytest.mark.parametrize("status, kind", [(503, "overloaded"), (401, "auth")])
async def test_a_gateway_hedge_that_fails_leaves_the_primary_to_answer(fake, status, kind):
    async with FakeGateway() as gateway:
        routed = two_routes(fake, gateway)
        fake.script(slow(0.6))
        gateway.script(openai_server.error(status))
        try:
            result = await routed.generate(dataclasses.replace(HEDGED, fallbacks=("openrouter:pro",)), [])
        finally:
            await routed.close()
    assert (result.route, result.fallback_from) == ("gemini", None)
    assert result.hedge.route == "openrouter" and result.hedge.answer.kind == kind  # settled as what it was


HEDGING = {"fallback": {"pro": ["flash"]}, "hedge_after_s": 0.2}


async def test_a_hedged_job_holds_both_calls_and_settles_the_winner_alone_when_the_loser_never_answered(
    sqlite_store, fake
):
    fake.script(hang(), ok())
    async with RoutedPipeline(sqlite_store, fake, policy=HEDGING) as p:
        catalog = p.catalog
        accepted = await p.finished()
    pro, flash = (
        pricing.estimate(catalog.resolve(model), accepted.size, Lane.STANDARD, 0, prompt_chars=len("a koi pond"))
        for model in ("pro", "flash")
    )
    assert accepted.estimate_usd == pro + flash  # the sum, not the dearer of the two
    job = await sqlite_store.get_job(accepted.job_id)
    assert job.state is JobState.SUCCEEDED and job.result["model"] == "flash"
    assert job.result["hedge"] == {
        "route": "gemini",
        "model": "pro",
        "won": True,
        "after_s": pytest.approx(0.2, abs=0.1),
        "answered": False,
        "cost_usd": None,
    }
    held, charged = to_micros(accepted.estimate_usd), to_micros(Decimal(job.result["cost_usd"]))
    assert [(r["entry"], r["cost_micros"], r["hedge"]) for r in await sqlite_store.ledger()] == [
        ("reservation", held, 0),
        ("settlement", charged, 0),
        ("release", held - charged, 0),
    ]
    assert p.worker._metrics.hedges.labels("hedge", "cancelled")._value.get() == 1
    reply = slack_render.done(p.result_payload(job.id))
    assert "hedged after 0." in reply and "cancelled unanswered" in reply and "Google may still bill it" in reply


async def test_when_the_loser_answered_both_calls_are_settled_within_the_hold(sqlite_store, fake):
    p = RoutedPipeline(sqlite_store, fake, policy=HEDGING)  # not started: the test plays the worker's part
    try:
        accepted = await p.service.submit(
            ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt="a koi pond")
        )
        job = await sqlite_store.lease("w", 60)
        winner = await p.provider.generate(dataclasses.replace(job.spec, hedge_after_s=None), [])
        loser = await p.provider.generate(
            dataclasses.replace(
                job.spec, model_alias="flash", model_id="gemini-3.1-flash-image", fallbacks=(), hedge_after_s=None
            ),
            [],
        )
        # Both images came back at the same moment: the primary's won, the hedge's is billed all the same.
        hedged = dataclasses.replace(winner, hedge=HedgeCall("gemini", "flash", 0.2, won=False, answer=loser))
        await p.worker.finish(job, "w", hedged, 1.0)
    finally:
        await p.provider.close()
    done = await sqlite_store.get_job(job.id)
    pro_cost, flash_cost = (
        pricing.settle(p.catalog.resolve(m), job.spec.size, Lane.STANDARD, r.usage)
        for m, r in (("pro", winner), ("flash", loser))
    )
    assert Decimal(done.result["cost_usd"]) == pro_cost + flash_cost
    assert done.result["hedge"]["cost_usd"] == str(flash_cost)
    held = to_micros(accepted.estimate_usd)
    assert [(r["entry"], r["cost_micros"], r["hedge"]) for r in await sqlite_store.ledger()] == [
        ("reservation", held, 0),
        ("settlement", to_micros(flash_cost), 1),
        ("settlement", to_micros(pro_cost), 0),
        ("release", held - to_micros(pro_cost + flash_cost), 0),
    ]
    assert held >= to_micros(pro_cost + flash_cost)  # the hold covered both
    exported = csv.DictReader(io.StringIO(render_ledger(await sqlite_store.ledger(), "csv", 0)))
    assert [r["hedge"] for r in exported if r["entry"] == "settlement"] == ["1", "0"]
    [result] = [d for d in await sqlite_store.claim_deliveries(["test"], 10, 60) if d.kind == "result"]
    assert f"the hedge call (flash via gemini) cost {usd(to_micros(flash_cost))}, included above" in status.done(
        result.payload
    )


def test_a_team_without_a_fallback_is_never_hedged():
    from bot.service import ImagineService

    service = ImagineService(None, load_catalog(), policies=PolicyBook({"hedge_after_s": 5}))
    request = ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt="a koi pond")
    assert service._specs.spec(request, "a koi pond", "pro", None, None, None, 0).hedge_after_s is None


async def test_when_both_calls_fail_the_pairs_other_call_is_never_the_error_raised(fake):
    # The gateway hedge fails first, so its error is the one raised (and billed as the
    # attempt's own, by a gateway that bills failed calls): the other call is Gemini's.
    async with FakeGateway() as gateway:
        routed = two_routes(fake, gateway)
        fake.script(slow(0.5, error(503)))
        gateway.script(openai_server.error(503))
        with pytest.raises(OverloadedError) as caught:
            await routed.generate(dataclasses.replace(HEDGED, fallbacks=("openrouter:pro",)), [])
        assert caught.value.route == "openrouter"
        assert (caught.value.hedge.route, caught.value.hedge.answer.route) == ("gemini", "gemini")
        await routed.close()


async def test_a_hedge_without_an_image_leaves_the_primary_to_answer(fake):
    fake.script(slow(0.6), finish("MAX_TOKENS"))
    routed = RoutedProvider([Route("gemini", gemini(fake))], load_catalog())
    try:
        result = await routed.generate(HEDGED, [])
    finally:
        await routed.close()
    assert result.model_alias == "pro" and result.hedge.answer.kind == "no_image"


async def test_a_paused_primary_gives_the_attempt_back_only_when_no_route_was_called(fake):
    async with FakeGateway() as gateway:
        routed = two_routes(fake, gateway)
        routed.routes["gemini"].breaker.opened_at = routed.routes["gemini"].breaker.clock()  # paused
        gateway.script(openai_server.error(429))
        try:
            with pytest.raises(OverloadedError) as called:
                await routed.generate(dataclasses.replace(HEDGED, fallbacks=("openrouter:pro",)), [])
            # The gateway was really called (and refused): this attempt counts.
            assert called.value.called and len(gateway.requests) == 1
            routed.routes["openrouter"].breaker.opened_at = routed.routes["openrouter"].breaker.clock()
            with pytest.raises(OverloadedError) as waited:
                await routed.generate(dataclasses.replace(HEDGED, fallbacks=("openrouter:pro",)), [])
            # Both paused: nothing was called, so waiting costs no attempt, until a route reopens.
            assert not waited.value.called and len(gateway.requests) == 1
            assert 0 < waited.value.retry_after <= routed.routes["gemini"].breaker.cooldown
        finally:
            await routed.close()
