"""Money off the happy path, through the service on both stores: every team is
capped, only allowed teams run, an over-budget request is refused (never
offered a confirmation), and fallbacks obey the rules the model asked for obeys."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from decimal import Decimal

from bot.catalog import load_catalog
from bot.money.budgets import Budget
from bot.service import Caller, ImagineService
from bot.types import Accepted, ImagineRequest, NeedsConfirmation, RefusalReason, Refused
from policies.config import PolicyBook

MOD = Caller("T1", "mod", platform_admin=True)


def service_for(store, clock, *, access=None, **team_policy) -> ImagineService:
    return ImagineService(
        store, load_catalog(), clock=clock, policies=PolicyBook(teams={"T1": team_policy}, access=access)
    )


def request(prompt="a koi pond", team="T1", **kw) -> ImagineRequest:
    return ImagineRequest(
        team=team, channel=kw.pop("channel", "C1"), user=kw.pop("user", "U1"), platform="test", prompt=prompt, **kw
    )


async def held(store) -> int:
    return sum(r["cost_micros"] for r in await store.ledger() if r["entry"] == "reservation")


async def test_a_team_without_a_budget_is_capped_by_the_default_team_budget(store, clock):
    service = service_for(
        store,
        clock,
        default_team_budget_usd="0.50",
        confirm_above_usd=None,
        soft_threshold="1.0",
        user_images_per_day=None,
        user_concurrent_jobs=None,
    )
    outcomes = [await service.submit(request(f"p{i}", user=f"U{i}")) for i in range(6)]
    accepted = [o for o in outcomes if isinstance(o, Accepted)]
    assert len(accepted) == int(Decimal("0.50") // accepted[0].estimate_usd) < 6
    refused = outcomes[len(accepted)]
    assert isinstance(refused, Refused) and refused.reason is RefusalReason.BUDGET_EXHAUSTED
    assert "default team budget of $0.50 per month" in refused.detail
    assert await held(store) == sum(int(a.estimate_usd * 1_000_000) for a in accepted)
    # Its own budget replaces the default.
    await service.set_budget(MOD, "5", "month")
    assert isinstance(await service.submit(request("now it fits", user="U9")), Accepted)


async def test_hundreds_of_concurrent_requests_at_the_default_budget_admit_exactly_what_fits(store, clock):
    service = service_for(
        store,
        clock,
        default_team_budget_usd="1.00",
        confirm_above_usd=None,
        soft_threshold="1.0",
        user_images_per_day=None,
        user_concurrent_jobs=None,
        team_queued_jobs=None,
    )
    outcomes = await asyncio.gather(*(service.submit(request(f"p{i:03}", user=f"U{i}")) for i in range(200)))
    accepted = [o for o in outcomes if isinstance(o, Accepted)]
    each = accepted[0].estimate_usd
    assert len(accepted) == int(Decimal("1.00") // each)
    assert all(o.reason is RefusalReason.BUDGET_EXHAUSTED for o in outcomes if isinstance(o, Refused))
    assert await held(store) <= 1_000_000


async def test_a_zero_default_budget_refuses_until_a_moderator_sets_one_and_says_who(store, clock):
    service = service_for(store, clock, default_team_budget_usd=0)
    outcome = await service.submit(request())
    assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.BUDGET_EXHAUSTED
    assert "no budget yet" in outcome.detail and "/imagine-budget set" in outcome.detail
    # Each platform's moderators get the command as their client takes it.
    on_discord = await service.submit(dataclasses.replace(request(), platform="discord"))
    assert isinstance(on_discord, Refused) and "`/imagine-budget set usd:<amount> period:month`" in on_discord.detail
    assert "`/imagine-budget set <usd> month`" not in on_discord.detail
    assert await store.counts_by_state() == {} and await store.ledger() == []
    await service.set_budget(MOD, "2", "month")
    assert isinstance(await service.submit(request()), Accepted)


async def test_usage_and_budget_show_say_a_team_is_on_the_default_budget(store, clock):
    service = service_for(store, clock)
    [status] = (await service.usage("T1", "U1")).budgets
    assert status.budget.default and status.budget.limit_micros == 20_000_000
    assert status.describe().startswith("default team budget $20.00/month")
    [shown] = await service.show_budgets(MOD)
    assert shown.budget.default
    await service.set_budget(MOD, "7", "week")
    [shown] = await service.show_budgets(MOD)
    assert not shown.budget.default and shown.budget.limit_micros == 7_000_000


async def test_a_team_off_the_allow_list_is_refused_and_changes_nothing(store, clock):
    service = service_for(store, clock, access={"teams": ["T1"]})
    assert service.team_allowed("T1") and not service.team_allowed("T-stranger")
    outcome = await service.submit(request(team="T-stranger"))
    assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.TEAM_NOT_ALLOWED
    assert "allow-list" in outcome.detail
    assert await store.counts_by_state() == {} and await store.ledger() == []
    assert isinstance(await service.submit(request()), Accepted)
    # Usage and budgets too, whichever platform asks; the CLI's operator is not held to it.
    stranger = Caller("T-stranger", "U1", platform_admin=True, platform="slack")
    for refused in (
        await service.usage("T-stranger", "U1", platform="discord"),
        await service.show_budgets(stranger),
        await service.set_budget(stranger, "5"),
    ):
        assert isinstance(refused, Refused) and refused.reason is RefusalReason.TEAM_NOT_ALLOWED
    assert await store.budgets("T-stranger") == []
    operator = Caller("T-stranger", "cli", platform_admin=True, platform="cli")
    assert isinstance(await service.set_budget(operator, "5"), Budget)


async def test_over_the_limit_is_refused_never_offered_a_confirmation(store, clock):
    # soft_threshold 1.0: the alert line is the limit itself, so only the fit check can speak.
    service = service_for(store, clock, soft_threshold="1.0", confirm_above_usd=None)
    await service.set_budget(MOD, "0.20", "day", soft_threshold=1.0)
    assert isinstance(await service.submit(request("first")), Accepted)
    outcome = await service.submit(request("second"))
    assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.BUDGET_EXHAUSTED
    assert "Nothing was charged" in outcome.detail
    # Confirmed or not: it does not fit.
    again = await service.submit(request("second", confirmed=True))
    assert isinstance(again, Refused) and again.reason is RefusalReason.BUDGET_EXHAUSTED


async def test_a_request_that_fits_but_passes_the_alert_line_is_still_asked_about(store, clock):
    service = service_for(store, clock, confirm_above_usd=None)
    await service.set_budget(MOD, "0.30", "day", soft_threshold=0.4)
    outcome = await service.submit(request())
    assert isinstance(outcome, NeedsConfirmation) and "alert line" in outcome.detail


async def test_fallbacks_obey_channel_rules_and_prices(store, clock):
    service = service_for(
        store,
        clock,
        confirm_above_usd=None,
        fallback={"pro": ["flash", "lite"]},
        channels={"C-pro": {"models": ["pro"]}},
    )
    anywhere = await service.submit(request("anywhere"))
    pro_only = await service.submit(request("pro only", channel="C-pro"))
    jobs = {a.job_id: (await store.get_job(a.job_id)).spec.fallbacks for a in (anywhere, pro_only)}
    # Lite has no price, so it never goes with a job; in a pro-only channel, neither does Flash.
    assert jobs == {anywhere.job_id: ("flash",), pro_only.job_id: ()}


async def test_a_fallback_that_cannot_make_the_requested_size_is_dropped(store, clock):
    service = service_for(store, clock, confirm_above_usd=None, fallback={"pro": ["legacy", "flash"]})
    accepted = await service.submit(request(size="4K"))
    assert (await store.get_job(accepted.job_id)).spec.fallbacks == ("flash",)  # legacy makes 1K only


async def test_an_over_budget_refusal_names_a_cheaper_model_that_still_fits(store, clock):
    service = service_for(store, clock, confirm_above_usd=None, soft_threshold="1.0")
    await service.set_budget(MOD, "0.12", "day", soft_threshold=1.0)
    outcome = await service.submit(request())  # Pro 2K
    assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.BUDGET_EXHAUSTED
    assert re.search(r"A flash image \(about \$0\.1\d\) would still fit: ask with model flash\.$", outcome.detail)
    assert isinstance(await service.submit(request(model="flash", size="2K")), Accepted)
    # Nothing cheaper fits now: no hint.
    outcome = await service.submit(request("again"))
    assert isinstance(outcome, Refused) and "would still fit" not in outcome.detail


async def test_every_refusal_that_says_nothing_was_charged_left_the_ledger_alone(store, clock):
    t1 = dict(confirm_above_usd=None, soft_threshold="1.0", user_concurrent_jobs=2, banned_terms=["gore"])
    service = ImagineService(
        store,
        load_catalog(),
        clock=clock,
        policies=PolicyBook(
            teams={"T1": t1, "T-zero": {"default_team_budget_usd": 0}}, access={"teams": ["T1", "T-zero"]}
        ),
    )
    await service.set_budget(MOD, "0.30", "day", soft_threshold=1.0)
    assert isinstance(await service.submit(request("first")), Accepted)
    before = await store.ledger()
    refusals = [
        await service.submit(request("gore")),  # moderation
        await service.submit(request("too dear", size="4K")),  # over the team budget
        await service.submit(request(team="T-stranger")),  # not on the allow-list
        await service.submit(request(team="T-zero")),  # no budget yet
    ]
    assert await store.ledger() == before
    await service.set_budget(MOD, "5", "day", soft_threshold=1.0)
    assert isinstance(await service.submit(request("second")), Accepted)
    before = await store.ledger()
    refusals.append(await service.submit(request("third")))  # concurrent-jobs quota
    assert await store.ledger() == before
    assert all(isinstance(r, Refused) and "Nothing was charged" in r.detail for r in refusals), refusals
    assert [r.reason for r in refusals] == [
        RefusalReason.MODERATION,
        RefusalReason.BUDGET_EXHAUSTED,
        RefusalReason.TEAM_NOT_ALLOWED,
        RefusalReason.BUDGET_EXHAUSTED,
        RefusalReason.QUOTA_EXCEEDED,
    ]
    assert {r["job_id"] for r in before} == {1, 2}  # only the two accepted jobs ever touched the ledger


async def test_a_repeated_request_gets_its_first_job_back_even_when_another_would_not_fit(store, clock):
    service = service_for(store, clock, confirm_above_usd=None, soft_threshold="1.0")
    await service.set_budget(MOD, "0.20", "day", soft_threshold=1.0)
    first = await service.submit(request(idempotency_key="slack:press:M1:reroll:U1", idempotency_window=10))
    again = await service.submit(request(idempotency_key="slack:press:M1:reroll:U1", idempotency_window=10))
    assert isinstance(again, Accepted) and again.duplicate and again.job_id == first.job_id
    assert again.estimate_usd == first.estimate_usd  # what is held for it
    clock.advance(11)  # a press after the window is a new request, and this one does not fit
    later = await service.submit(request(idempotency_key="slack:press:M1:reroll:U1", idempotency_window=10))
    assert isinstance(later, Refused) and later.reason is RefusalReason.BUDGET_EXHAUSTED


async def test_a_fallback_to_a_gateway_route_this_bot_does_not_run_is_dropped(store, clock):
    policies = PolicyBook(teams={"T1": {"confirm_above_usd": None, "fallback": {"pro": ["openrouter:pro", "flash"]}}})
    without = ImagineService(store, load_catalog(), clock=clock, policies=policies)
    with_gateway = ImagineService(store, load_catalog(), clock=clock, policies=policies, gateway_routes=("openrouter",))
    a = await without.submit(request("a"))
    b = await with_gateway.submit(request("b"))
    assert (await store.get_job(a.job_id)).spec.fallbacks == ("flash",)
    assert (await store.get_job(b.job_id)).spec.fallbacks == ("openrouter:pro", "flash")
