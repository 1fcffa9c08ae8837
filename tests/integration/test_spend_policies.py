"""Spend, quota, moderation and routing decisions, through the service API."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from bot.catalog import load_catalog
from bot.money.budgets import Budget, Period
from bot.service import Caller, ImagineService, confirmed
from bot.types import Accepted, ImagineRequest, NeedsConfirmation, RefusalReason, Refused
from policies.config import PolicyBook


def pro_2k(prompt: str) -> Decimal:
    """The Pro 2K estimate: 1,120 image tokens at $120/M, the prompt (a token a character
    at most, plus 100 for framing) at $2/M, and 2,000 text and thinking tokens at $12/M."""
    return Decimal("0.1344") + (len(prompt) + 100) * Decimal("0.000002") + Decimal("0.024")


def service_for(store, clock, **team_policy) -> ImagineService:
    return ImagineService(store, load_catalog(), policies=PolicyBook(teams={"T1": team_policy}), clock=clock)


def request(prompt="a koi pond", **kw) -> ImagineRequest:
    return ImagineRequest(
        team="T1", channel=kw.pop("channel", "C1"), user=kw.pop("user", "U1"), platform="test", prompt=prompt, **kw
    )


async def test_moderation_refusals_cost_nothing_and_are_recorded(store, clock):
    service = service_for(store, clock, banned_terms=["gore", "blood bath"])
    for prompt in ("GORE everywhere", "a blood bath", "   ", "x" * 2001):
        outcome = await service.submit(request(prompt))
        assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.MODERATION
    assert isinstance(await service.submit(request("a gorgeous bloody-minded sunset")), Accepted)
    log = [(r["reason"], r["prompt"]) for r in await store.moderation_log("T1")]
    assert log == [
        ("banned_term", "GORE everywhere"),
        ("banned_term", "a blood bath"),
        ("empty", "   "),
        ("too_long", "x" * 2001),
    ]
    assert await store.ledger() != [] and all(r["job_id"] for r in await store.ledger())
    assert len({r["job_id"] for r in await store.ledger()}) == 1  # only the accepted prompt


async def test_privacy_mode_records_refusals_without_their_text(store, clock):
    service = service_for(store, clock, banned_terms=["gore"], privacy_mode=True)
    await service.submit(request("gore"))
    assert [(r["reason"], r["prompt"]) for r in await store.moderation_log("T1")] == [("banned_term", None)]


async def test_a_non_moderator_cannot_change_or_see_budgets_and_changes_nothing(store, clock):
    service = service_for(store, clock, moderators=["U-mod"])
    outcome = await service.set_budget(Caller("T1", "U-random"), "50", "month")
    assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.NOT_MODERATOR
    assert await store.budgets("T1") == []
    assert isinstance(await service.show_budgets(Caller("T1", "U-random")), Refused)
    # Listed in configuration, or an admin according to the platform: allowed.
    assert isinstance(await service.set_budget(Caller("T1", "U-mod"), "50", "month"), Budget)
    budget = await service.set_budget(Caller("T1", "U-admin", platform_admin=True), "$12.5", "week")
    assert (budget.limit_micros, budget.period) == (12_500_000, Period.WEEK)
    [status] = await service.show_budgets(Caller("T1", "U-mod"))
    assert status.budget == budget


@pytest.mark.parametrize(
    "amount, period", [("-1", "month"), ("lots", "month"), ("nan", "day"), ("5", "fortnight"), ("2000000", "day")]
)
async def test_bad_budget_values_are_refused(store, clock, amount, period):
    service = service_for(store, clock)
    outcome = await service.set_budget(Caller("T1", "U", platform_admin=True), amount, period)
    assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.INVALID_REQUEST
    assert await store.budgets("T1") == []


async def test_budget_refusal_names_the_limit_the_figure_and_the_reset(store, clock):
    service = service_for(store, clock, confirm_above_usd=None)
    await service.set_budget(Caller("T1", "mod", platform_admin=True), "0.20", "day")
    assert isinstance(await service.submit(request(confirmed=True)), Accepted)
    outcome = await service.submit(request("again", confirmed=True))
    assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.BUDGET_EXHAUSTED
    assert "team budget of $0.20 per day" in outcome.detail
    assert "$0.16 is already spent or held" in outcome.detail and "resets 20" in outcome.detail


async def test_quota_refusal_names_the_limit_and_when_it_frees(store, clock):
    service = service_for(store, clock, user_concurrent_jobs=1)
    assert isinstance(await service.submit(request()), Accepted)
    outcome = await service.submit(request("second"))
    assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.QUOTA_EXCEEDED
    assert "1 of 1 allowed jobs" in outcome.detail and "frees up" in outcome.detail.lower()


async def test_past_the_soft_threshold_a_downgrade_team_gets_flash_and_is_told(store, clock):
    service = service_for(store, clock, over_soft_threshold="downgrade")
    await service.set_budget(Caller("T1", "mod", platform_admin=True), "1.00", "month")
    for i in range(5):  # 5 x 0.1586 = 0.793 held
        assert (await service.submit(request(f"p{i}", user=f"U{i}"))).model == "pro"
    outcome = await service.submit(request("p6", user="U6"))  # would pass 80% of $1.00
    assert isinstance(outcome, Accepted) and outcome.model == "flash" and outcome.downgraded_from == "pro"
    assert outcome.estimate_usd < pro_2k("p6")


async def test_past_the_soft_threshold_a_confirm_team_is_asked_first(store, clock):
    service = service_for(store, clock, over_soft_threshold="confirm")
    await service.set_budget(Caller("T1", "mod", platform_admin=True), "1.10", "month")
    for i in range(5):  # 0.793 held, under the 80% line (0.88)
        await service.submit(request(f"p{i}", user=f"U{i}"))
    outcome = await service.submit(request("p6", user="U6"))
    assert isinstance(outcome, NeedsConfirmation)
    assert outcome.estimate_usd == pro_2k("p6") and outcome.remaining_usd == Decimal("1.10") - 5 * pro_2k("p0")
    assert outcome.flash_estimate_usd < outcome.estimate_usd
    assert await store.counts_by_state() == {"queued": 5}  # nothing queued while asking
    run = await service.submit(confirmed(outcome))
    assert isinstance(run, Accepted) and run.model == "pro"
    # [Use Flash] runs what was quoted (Flash at the same 2K), which still fits in $1.10.
    flash = await service.submit(confirmed(outcome, use_flash=True))
    assert isinstance(flash, Accepted) and (flash.model, flash.size) == ("flash", "2K")
    assert flash.estimate_usd == outcome.flash_estimate_usd


async def test_an_expensive_request_always_needs_confirmation(store, clock):
    service = service_for(store, clock, confirm_above_usd="0.20")
    outcome = await service.submit(request(size="4K"))
    assert isinstance(outcome, NeedsConfirmation) and "above the $0.20" in outcome.detail
    assert isinstance(await service.submit(request(size="2K")), Accepted)


async def test_channel_rules_restrict_models_and_sizes(store, clock):
    service = service_for(
        store, clock, confirm_above_usd=None, channels={"C-design": {"models": ["pro"], "sizes": ["4K"]}}
    )
    outcome = await service.submit(request(channel="C-design", model="flash", size="4K"))
    assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.NOT_ALLOWED_HERE
    outcome = await service.submit(request(channel="C-design", size="2K"))
    assert isinstance(outcome, Refused) and "4K" in outcome.detail
    assert isinstance(await service.submit(request(channel="C-design", size="4K")), Accepted)
    assert isinstance(await service.submit(request(channel="C-random", model="flash")), Accepted)


async def test_two_hundred_concurrent_submits_through_the_service(store_factory, clock):
    stores = [await store_factory() for _ in range(4)]
    services = [
        service_for(
            s, clock, confirm_above_usd=None, user_concurrent_jobs=None, team_queued_jobs=None, user_images_per_day=None
        )
        for s in stores
    ]
    # Prompts of one length cost the same, so the budget fits exactly ten of them.
    await services[0].set_budget(Caller("T1", "mod", platform_admin=True), str(10 * pro_2k("p000")), "month")
    outcomes = await asyncio.gather(
        *(services[i % 4].submit(request(f"p{i:03d}", user=f"U{i}", confirmed=True)) for i in range(200))
    )
    assert sum(isinstance(o, Accepted) for o in outcomes) == 10
    refused = [o for o in outcomes if isinstance(o, Refused)]
    assert len(refused) == 190 and {o.reason for o in refused} == {RefusalReason.BUDGET_EXHAUSTED}
    [status] = await stores[0].budget_statuses("T1", None, None)
    assert status.reserved_micros + status.spent_micros <= status.budget.limit_micros


async def test_usage_reports_my_spend_and_the_team_budgets(store, clock):
    service = service_for(store, clock)
    await service.set_budget(Caller("T1", "mod", platform_admin=True), "5", "month")
    report = await service.usage("T1", "U1")
    assert report.user_spent_today_micros == 0 and [s.budget.limit_micros for s in report.budgets] == [5_000_000]


async def test_confirmations_survive_a_restart_and_run_once_for_their_owner(store_factory, clock):
    first = service_for(await store_factory(), clock, confirm_above_usd="0.20")
    question = await first.submit(request("a cathedral", size="4K"))
    token = await first.hold_confirmation(question)
    restarted = service_for(await store_factory(), clock, confirm_above_usd="0.20")  # a new process
    outcome, _ = await restarted.confirm(token, Caller("T1", "U-someone-else"))
    assert isinstance(outcome, Refused) and "Only the person who asked" in outcome.detail
    outcome, req = await restarted.confirm(token, Caller("T1", "U1"), use_flash=True)
    assert isinstance(outcome, Accepted) and (outcome.model, outcome.size) == ("flash", "4K")
    assert req.confirmed and req.prompt == "a cathedral"
    again, _ = await restarted.confirm(token, Caller("T1", "U1"))
    assert isinstance(again, Refused) and "expired" in again.detail


async def test_control_characters_are_dropped_from_prompts_and_their_log(store, clock):
    service = service_for(store, clock, banned_terms=["gore"])
    accepted = await service.submit(request("a koi\x00 pond\x07\nat dawn"))
    assert isinstance(accepted, Accepted)
    assert (await store.get_job(accepted.job_id)).spec.prompt == "a koi pond\nat dawn"
    assert isinstance(await service.submit(request("gore\x00")), Refused)
    assert [r["prompt"] for r in await store.moderation_log("T1")] == ["gore"]


async def test_a_held_confirmation_keeps_the_cleaned_prompt(store, clock):
    service = service_for(store, clock, confirm_above_usd=0.05)
    outcome = await service.submit(request("a koi\x00 pond", size="4K"))
    assert isinstance(outcome, NeedsConfirmation)
    token = await service.hold_confirmation(outcome)  # PostgreSQL refuses a NUL in JSON
    ran, _ = await service.confirm(token, Caller("T1", "U1"))
    assert isinstance(ran, Accepted)
    assert (await store.get_job(ran.job_id)).spec.prompt == "a koi pond"
